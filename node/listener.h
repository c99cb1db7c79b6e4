/*  listener.h: the node's Unix socket: its directory, the lock that says
    who serves it, binding and listening, accepting clients up to the
    client limit. */
#ifndef IPCNET_LISTENER_H
#define IPCNET_LISTENER_H

#include "client.h"
#include "directory.h"
#include "session.h"

typedef struct listener listener_t;

/* Takes the socket (refusing if another node serves it, removing a stale
   file) and listens. Logs why and returns NULL on failure. */
listener_t *listener_new(clients_t *clients, directory_t *dir);

/* Starts accepting clients, whose input sessions handles. Returns 0 or
   -errno. */
int listener_serve(listener_t *self, sessions_t *sessions);

/* Hands the socket, its lock and (if the node made it) its directory to
   the user the node is about to become (config->drop). */
void listener_hand_over(listener_t *self);

/* Stops listening and removes the socket file; safe on NULL. */
void listener_destroy(listener_t **self_p);

#endif
