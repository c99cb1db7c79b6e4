/*  privs.h: whom the node serves and runs as: the group that may connect
    to its socket, and the unprivileged user that a node started as root
    becomes once its sockets are open and its keys read. */
#ifndef IPCNET_PRIVS_H
#define IPCNET_PRIVS_H

#include "node.h"

#define PRIVS_DEFAULT_NAME  "ipc-node"  /* the default user and group */

/* Fills config's access_gid, drop, run_uid and run_gid from its group,
   user and no_drop: as root, the group --group names, else ipc-node if
   it exists, else root's; and the user --user names, else ipc-node if it
   exists (else no drop, which is said). Not root: no drop, and the
   socket's group only if --group gives one. Logs why and returns -1 for
   a name that is no user or group. */
int privs_plan(node_config_t *config);

/* Becomes run_uid/run_gid for good (with the access group as the only
   supplementary one), and forbids ever gaining privileges again. Logs
   why and returns -1 on failure; 0 when there was nothing to drop. */
int privs_drop(const node_config_t *config);

#endif
