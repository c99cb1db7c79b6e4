/*  session.h: one client's input: reading its socket, decoding frames,
    the HELLO, handing each command to the module that does it, and the
    teardown once it is gone.

    Buffers. Each client reads into a 64 KiB buffer and its frames are
    handled in place. A frame larger than that gets a buffer of its own,
    which is then passed by reference to the receivers' queues: a large
    payload is never copied by the node. A client paused on a full
    receiver is not read; its frame stays in its buffer until it is
    resumed. */
#ifndef IPCNET_SESSION_H
#define IPCNET_SESSION_H

#include "client.h"
#include "deliver.h"
#include "directory.h"
#include "query.h"
#include "request.h"

typedef struct sessions sessions_t;

sessions_t *sessions_new(clients_t *clients, directory_t *dir, deliver_t *deliver,
                         requests_t *requests, query_t *query);
void sessions_destroy(sessions_t **self_p);

/* The store that handles the store's commands (store.h), and is told of
   clients that go. */
struct store;
void sessions_set_store(sessions_t *self, struct store *store);

/* Starts reading a new client (already in the directory). Returns 0 or
   -errno (the caller frees it). */
int session_start(sessions_t *self, client_t *c);

/* Idle step: paused clients that may go on handle their frames. */
void sessions_resume(sessions_t *self);

/* Idle step: doomed clients are torn down (their names, subscriptions,
   watches, requests and waiters go) and moved to the graveyard. */
void sessions_teardown(sessions_t *self);

/* Idle step: queues are written, and the graveyard freed (free: also the
   clients torn down). */
void sessions_write(sessions_t *self);
void sessions_free_graveyard(sessions_t *self);

/* Dooms and tears down every client (the node stops). */
void sessions_close_all(sessions_t *self);

#endif
