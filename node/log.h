/*  log.h: the node's log lines.

    To stderr always: with a timestamp and a level letter on a terminal or
    a file; under systemd (JOURNAL_STREAM names our stderr) as
    "<priority>text" with no timestamp, so the journal keeps the levels
    and its own time. With log_open(1), to syslog as well.
*/
#ifndef IPCNET_LOG_H
#define IPCNET_LOG_H

#include <stddef.h>
#include <syslog.h>

/* Decides the format from the environment; to_syslog adds syslog. */
void log_open(int to_syslog);

/* Nothing is written at all (the fuzzer). */
void log_quiet(void);

/* The local time now into buf, "YYYY-MM-DD HH:MM:SS" (with_date) or
   "HH:MM:SS"; returns the nanoseconds past that second. */
long log_now(char *buf, size_t size, int with_date);

void log_msg(int priority, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

#define log_error(...)   log_msg(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)   log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
