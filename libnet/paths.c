/*  paths.c: the node's default socket, and trusting a directory. */

#include "paths.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

int paths_check_dir(const char *dir, uid_t uid, uid_t also_uid, char *why, size_t size)
{
    struct stat st;
    if (lstat(dir, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        snprintf(why, size, "cannot use %s: %m", dir);
        return -EACCES;
    }
    if (S_ISLNK(st.st_mode)) {
        snprintf(why, size, "%s is a symbolic link: not trusting it (remove it, or use a "
                 "directory of your own)", dir);
        return -EACCES;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(why, size, "%s is not a directory (remove it)", dir);
        return -EACCES;
    }
    if (st.st_uid != uid && st.st_uid != 0 && (also_uid == (uid_t) -1 || st.st_uid != also_uid)) {
        snprintf(why, size, "%s belongs to uid %u, not to uid %u: not trusting it (it may "
                 "have been made to catch your traffic: remove it, or use a directory of your "
                 "own, e.g. set XDG_RUNTIME_DIR)", dir, (unsigned) st.st_uid, (unsigned) uid);
        return -EACCES;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        snprintf(why, size, "%s may be written by others (mode %04o): not trusting it "
                 "(chmod go-w it, or remove it)", dir, (unsigned) (st.st_mode & 07777));
        return -EACCES;
    }
    return 1;
}

int paths_own_socket(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (geteuid() == 0)
        n = snprintf(buf, size, "%s", PATHS_SYSTEM_SOCKET);
    else if (xdg && *xdg == '/')
        n = snprintf(buf, size, "%s/ipc-node/node.sock", xdg);
    else
        n = snprintf(buf, size, "/tmp/ipc-node-%u/node.sock", (unsigned) geteuid());
    return n < 0 || (size_t) n >= size ? -ENAMETOOLONG : 0;
}
