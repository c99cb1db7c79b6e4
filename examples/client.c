/*  client.c: a client. One request to a service, its reply on stdout.

      client NAME TEXT [TIMEOUT_MS]

    Exits 0 with the reply, or 1 with the reason on stderr: the library's
    words for the error and the node's own (ipcnet_last_error). */

#include <ipcnet.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: client NAME TEXT [TIMEOUT_MS]\n");
        return 2;
    }
    int timeout = argc > 3 ? atoi(argv[3]) : 2000;
    ipcnet_t *c;
    int rc = ipcnet_connect(&c, NULL, "client", 0);
    if (rc < 0) {
        fprintf(stderr, "client: cannot connect: %s\n", ipcnet_strerror(rc));
        return 1;
    }
    ipcnet_msg_t reply;
    rc = ipcnet_request(c, argv[1], argv[2], strlen(argv[2]), timeout, &reply);
    if (rc < 0) {
        const char *why = ipcnet_last_error(c);
        fprintf(stderr, "client: %s: %s%s%s\n", argv[1], ipcnet_strerror(rc),
                *why ? ": " : "", why);
    } else {
        printf("%.*s\n", (int) reply.size, (const char *) reply.data);
        printf("(from %s, uid %u on %s)\n", reply.source, (unsigned) reply.uid, reply.node);
    }
    ipcnet_close(&c);
    return rc < 0;
}
