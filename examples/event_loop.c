/*  event_loop.c: a client inside a poll() loop, beside other descriptors.

      event_loop NAME TOPIC

    Binds NAME and answers each request with how many it has answered;
    publishes each line of standard input on TOPIC; ends at the end of its
    input. One poll() waits on both: ipcnet_fd() for POLLIN (and POLLOUT
    while ipcnet_want_write() says the library has bytes queued), then
    ipcnet_dispatch() handles what came. A call that waits for an answer
    may read messages meanwhile; ipcnet_pending() tells, so the loop does
    not sleep on them. */

#include <ipcnet.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static unsigned long answered;

static void on_message(ipcnet_t *c, const ipcnet_msg_t *m, void *arg)
{
    (void) arg;
    if (m->kind != IPCNET_MSG_REQUEST)
        return;
    char text[32];
    int n = snprintf(text, sizeof text, "%lu", ++answered);
    int rc = ipcnet_reply(c, m, text, (size_t) n);
    if (rc < 0)
        fprintf(stderr, "event_loop: cannot reply: %s\n", ipcnet_strerror(rc));
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: event_loop NAME TOPIC\n");
        return 2;
    }
    ipcnet_t *c;
    int rc = ipcnet_connect(&c, NULL, "event_loop", 0);
    if (rc < 0) {
        fprintf(stderr, "event_loop: cannot connect: %s\n", ipcnet_strerror(rc));
        return 1;
    }
    if ((rc = ipcnet_bind(c, argv[1])) < 0) {
        fprintf(stderr, "event_loop: cannot bind %s: %s\n", argv[1], ipcnet_strerror(rc));
        ipcnet_close(&c);
        return 1;
    }
    fprintf(stderr, "ready\n");
    char line[4096];
    size_t have = 0;
    int in_open = 1;
    while (in_open) {
        struct pollfd p[2] = {
            { ipcnet_fd(c), (short) (POLLIN | (ipcnet_want_write(c) ? POLLOUT : 0)), 0 },
            { STDIN_FILENO, POLLIN, 0 },
        };
        if (poll(p, 2, ipcnet_pending(c) ? 0 : -1) < 0 && errno != EINTR)
            break;
        rc = ipcnet_dispatch(c, on_message, NULL);
        if (rc < 0) {
            fprintf(stderr, "event_loop: %s\n", ipcnet_strerror(rc));
            break;
        }
        if (!(p[1].revents & (POLLIN | POLLHUP)))
            continue;
        ssize_t n = read(STDIN_FILENO, line + have, sizeof line - 1 - have);
        if (n <= 0) {
            in_open = 0;
            n = 0;
        }
        have += (size_t) n;
        /* Each whole line (or a full buffer, or what is left at the end). */
        char *nl;
        while ((nl = memchr(line, '\n', have)) || have == sizeof line - 1 || (!in_open && have)) {
            size_t len = nl ? (size_t) (nl - line) : have;
            rc = ipcnet_publish(c, argv[2], line, len, IPCNET_CONFIRM);
            if (rc < 0)
                fprintf(stderr, "event_loop: cannot publish: %s\n", ipcnet_strerror(rc));
            size_t used = nl ? len + 1 : len;
            memmove(line, line + used, have - used);
            have -= used;
        }
    }
    ipcnet_flush(c, 1000);
    ipcnet_close(&c);
    return 0;
}
