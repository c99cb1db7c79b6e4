/*  notify.c: sd_notify's protocol; see notify.h. */

#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path)
        return 1;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    size_t len = strlen(path);
    /* "@name" is an abstract socket: its name starts with a NUL byte. */
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof sa.sun_path)
        return -EINVAL;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = 0;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *) &sa,
                       (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len));
    int rc = n < 0 ? -errno : 0;
    close(fd);
    return rc;
}
