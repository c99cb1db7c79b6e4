/*  paths.h: where the node's socket is, and whether a directory may be
    trusted with it: shared by libipcnet and ipc-node. Internal: not
    installed.

    A directory is trusted only if it is a directory (not a link), owned
    by the user (or root), and writable by no one else: a path under /tmp
    is never trusted by its name alone, since anyone may have made it. */
#ifndef IPCNET_PATHS_H
#define IPCNET_PATHS_H

#include <stddef.h>
#include <sys/types.h>

#define PATHS_SYSTEM_SOCKET "/run/ipc-node/node.sock"

/* Is dir a directory that uid (or root, or also_uid unless it is
   (uid_t) -1) owns and no one else may write? Returns 1, 0 if it does
   not exist, or -EACCES with a sentence in why that names the path, what
   is wrong and the fix. */
int paths_check_dir(const char *dir, uid_t uid, uid_t also_uid, char *why, size_t size);

/* The socket of the node this user would run: $XDG_RUNTIME_DIR/ipc-node
   /node.sock, else /tmp/ipc-node-UID/node.sock; root's is the system
   socket. Returns 0 or -ENAMETOOLONG. */
int paths_own_socket(char *buf, size_t size);

#endif
