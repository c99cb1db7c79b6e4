/*  echo_service.c: a service. It binds a name and answers each request
    with the request's payload in capitals.

      echo_service [NAME [COUNT]]     (example.echo, 0: answer for ever)

    Says "ready" on stderr once the name is bound, so a script may wait for
    it. Connects to the default socket ($IPCNET_SOCKET, else the node's
    usual one). */

#include <ipcnet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "example.echo";
    long count = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    ipcnet_t *c;
    int rc = ipcnet_connect(&c, NULL, "echo_service", 0);
    if (rc < 0) {
        fprintf(stderr, "echo_service: cannot connect: %s\n", ipcnet_strerror(rc));
        return 1;
    }
    rc = ipcnet_bind(c, name);
    if (rc < 0) {
        fprintf(stderr, "echo_service: cannot bind %s: %s (%s)\n", name, ipcnet_strerror(rc),
                ipcnet_last_error(c));
        ipcnet_close(&c);
        return 1;
    }
    fprintf(stderr, "ready\n");
    for (long done = 0; count == 0 || done < count;) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(c, &m, -1);
        if (rc < 0) {
            fprintf(stderr, "echo_service: %s\n", ipcnet_strerror(rc));
            break;
        }
        if (m.kind != IPCNET_MSG_REQUEST)
            continue;
        char *up = malloc(m.size ? m.size : 1);
        if (!up)
            break;
        for (size_t i = 0; i < m.size; i++)
            up[i] = (char) toupper(((const unsigned char *) m.data)[i]);
        rc = ipcnet_reply(c, &m, up, m.size);   /* m is valid until the next call */
        free(up);
        if (rc < 0)
            fprintf(stderr, "echo_service: cannot reply to %s: %s\n", m.source,
                    ipcnet_strerror(rc));
        done++;
    }
    ipcnet_close(&c);
    return rc < 0;
}
