/*  path.c: making and checking the directories the node keeps its files
    in (the checks themselves are libnet/paths.c, shared with the
    library), and reading those files whole. */

#include "path.h"
#include "paths.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *path_read(int fd, size_t size, size_t *len)
{
    char *text = malloc(size + 1);
    size_t got = 0;
    while (text && got < size) {
        ssize_t n = pread(fd, text + got, size - got, (off_t) got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    if (text)
        text[got] = 0;
    *len = got;
    return text;
}

int path_dirname(const char *path, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", path);
    if (n < 0 || (size_t) n >= size)
        return -ENAMETOOLONG;
    char *slash = strrchr(buf, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == buf)
        buf[1] = 0;
    else
        *slash = 0;
    return 0;
}

int path_own_dir(const char *dir, mode_t mode, uid_t also_uid, char *why, size_t size)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof path, "%s", dir);
    if (n < 0 || (size_t) n >= sizeof path) {
        snprintf(why, size, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(path, 0755) < 0 && errno != EEXIST) {
                int err = errno;
                snprintf(why, size, "cannot create %s: %s", path, strerror(err));
                return -err;
            }
            *p = '/';
        }
    int made = 0;
    if (mkdir(path, mode) == 0) {
        made = 1;
        if (chmod(path, mode) < 0) {
            int err = errno;
            snprintf(why, size, "cannot set the mode of %s: %s", path, strerror(err));
            return -err;
        }
    } else if (errno != EEXIST) {
        int err = errno;
        snprintf(why, size, "cannot create %s: %s", path, strerror(err));
        return -err;
    }
    int rc = paths_check_dir(path, geteuid(), also_uid, why, size);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        snprintf(why, size, "%s vanished as it was made", path);
        return -ENOENT;
    }
    return made;
}
