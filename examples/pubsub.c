/*  pubsub.c: publish and subscribe.

      pubsub sub PATTERN COUNT    prints COUNT publications on topics
                                  matching PATTERN ("news.*", "*"), then ends
      pubsub pub TOPIC TEXT       publishes TEXT on TOPIC

    A subscriber says "ready" on stderr once subscribed. A publication goes
    to every subscriber there is, on this node and the others; one with no
    subscriber goes nowhere, and that is not an error. */

#include <ipcnet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int subscriber(ipcnet_t *c, const char *pattern, long count)
{
    int rc = ipcnet_subscribe(c, pattern);
    if (rc < 0) {
        fprintf(stderr, "pubsub: cannot subscribe to %s: %s\n", pattern, ipcnet_strerror(rc));
        return 1;
    }
    fprintf(stderr, "ready\n");
    for (long got = 0; got < count;) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(c, &m, -1);
        if (rc < 0) {
            fprintf(stderr, "pubsub: %s\n", ipcnet_strerror(rc));
            return 1;
        }
        if (m.kind != IPCNET_MSG_PUBLISH)
            continue;
        printf("%s %.*s\n", m.name, (int) m.size, (const char *) m.data);
        fflush(stdout);
        got++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4 || (strcmp(argv[1], "sub") && strcmp(argv[1], "pub"))) {
        fprintf(stderr, "usage: pubsub sub PATTERN COUNT | pubsub pub TOPIC TEXT\n");
        return 2;
    }
    ipcnet_t *c;
    int rc = ipcnet_connect(&c, NULL, "pubsub", 0);
    if (rc < 0) {
        fprintf(stderr, "pubsub: cannot connect: %s\n", ipcnet_strerror(rc));
        return 1;
    }
    int status;
    if (!strcmp(argv[1], "sub")) {
        status = subscriber(c, argv[2], strtol(argv[3], NULL, 10));
    } else {
        /* IPCNET_CONFIRM: return once the node has taken it (and written it
           to every local subscriber's socket), not merely queued it here. */
        rc = ipcnet_publish(c, argv[2], argv[3], strlen(argv[3]), IPCNET_CONFIRM);
        if (rc < 0)
            fprintf(stderr, "pubsub: cannot publish on %s: %s\n", argv[2], ipcnet_strerror(rc));
        status = rc < 0;
    }
    ipcnet_close(&c);
    return status;
}
