/*  server.h: the node: its parts, built in order, and the idle pass that
    runs before the loop sleeps. */
#ifndef IPCNET_SERVER_H
#define IPCNET_SERVER_H

#include "loop.h"
#include "node.h"

typedef struct server server_t;

/* Takes the socket, binds the ROUTER, and starts every part on loop.
   Logs why and returns NULL on failure. config is copied. */
server_t *server_new(loop_t *loop, const node_config_t *config);

/* Reads the --policy file again (SIGHUP); on an error the rules in force
   stay, and the log says why. */
void server_reload(server_t *self);

/* Closes every client, says goodbye to every peer, removes the socket
   file, frees; safe on NULL. */
void server_destroy(server_t **self_p);

#endif
