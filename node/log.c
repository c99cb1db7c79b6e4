/*  log.c: the node's log lines; see log.h. */

#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static int s_journal;       /* stderr is the journal's stream */
static int s_syslog;
static int s_quiet;

/* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it gave us; it
   counts only if stderr is still that stream (not redirected since). */
static int s_stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    return e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(2, &st) == 0 &&
           (unsigned long long) st.st_dev == dev && (unsigned long long) st.st_ino == ino;
}

void log_open(int to_syslog)
{
    s_journal = s_stderr_is_journal();
    s_syslog = to_syslog;
    if (s_syslog)
        openlog("ipc-node", LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void log_quiet(void)
{
    s_quiet = 1;
}

long log_now(char *buf, size_t size, int with_date)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    localtime_r(&ts.tv_sec, &tm);
    if ((with_date ? strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm)
                   : strftime(buf, size, "%H:%M:%S", &tm)) == 0 && size)
        buf[0] = 0;
    return ts.tv_nsec;
}

void log_msg(int priority, const char *fmt, ...)
{
    if (s_quiet)
        return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* One line: a newline inside (from a peer's words, a file) would
       forge another line of the log. */
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (s_journal)
        fprintf(stderr, "<%d>%s\n", priority, text);
    else {
        static const char letters[] = "EEEEWNID";
        char when[32];
        long ns = log_now(when, sizeof when, 1);
        fprintf(stderr, "%s.%03ld %c %s\n", when, ns / 1000000, letters[priority & 7], text);
    }
    fflush(stderr);
    if (s_syslog)
        syslog(priority, "%s", text);
}
