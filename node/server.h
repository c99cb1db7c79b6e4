/*  server.h: the node's local side: the Unix listener, its clients, and the
    directory of names, topics, watches and pending requests they share.

    Every frame a client sends is routed here: to a holder of a name, to a
    unique address, to the subscribers of a topic. Each client has a queue
    bounded in bytes; when a receiver's queue is full the sender is paused
    (its socket is no longer read) until the receiver drains, so nothing is
    dropped and the node's memory stays bounded. */
#ifndef IPCNET_SERVER_H
#define IPCNET_SERVER_H

#include "loop.h"
#include "node.h"

typedef struct server server_t;

/* Takes the socket (refusing if another node serves it, removing a stale
   file), listens and registers with loop. Logs why and returns NULL on
   failure. config is copied. */
server_t *server_new(loop_t *loop, const node_config_t *config);

/* Closes every client, removes the socket file, frees; safe on NULL. */
void server_destroy(server_t **self_p);

#endif
