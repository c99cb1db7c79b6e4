/*  store.h: the shared key-value store: every key on every node, last
    writer wins by (hybrid logical clock, node id), replicated to up peers
    and reconciled by digests when a peer comes up, kept in an append-only
    log in the state directory (docs/store.md).

    Calls come down from the session (a client's PUT, GET, DEL, KEYS,
    WATCH_KEYS, and its going) and from the cluster (a peer up or down, a
    peer's STORE_* message); the store calls client.c and peer.c only. */
#ifndef IPCNET_STORE_H
#define IPCNET_STORE_H

#include "client.h"
#include "loop.h"
#include "node.h"
#include "peer.h"
#include "policy.h"
#include "proto.h"
#include "wire.h"

typedef struct store store_t;

/* A store for the node whose id is id_hex (32 hex digits). Reads the log
   of cfg->state_dir (a torn end is dropped and said). NULL on failure. */
store_t *store_new(loop_t *loop, const node_config_t *cfg, policy_t *policy,
                   const char *id_hex);
void store_destroy(store_t **self_p);

/* Does this local frame type belong to the store? */
int store_is_command(uint8_t type);

/* Handles a client's PUT, GET, DEL, KEYS, WATCH_KEYS or UNWATCH_KEYS:
   answers it (OK, ERROR, and events). */
void store_command(store_t *self, client_t *c, const wire_frame_t *f);

/* The client is going: its watches end, its ephemeral keys are deleted
   (everywhere). */
void store_client_gone(store_t *self, client_t *c);

/* A peer said HELLO: does it take STORE_* messages (P_F_STORE)? A node
   that does not is sent none: an older node would drop the link. */
void store_peer_hello(store_t *self, peer_t *p, int speaks);

/* A peer came up: it gets our digest. Went down: its ephemeral keys go. */
void store_peer_up(store_t *self, peer_t *p);
void store_peer_down(store_t *self, peer_t *p);

/* A STORE_RECORDS or STORE_DIGEST from an up peer. */
void store_peer_message(store_t *self, peer_t *p, const proto_msg_t *m);

/* Adds to out one slot's worth of the keys matching pattern that c may
   get, "key TAB version TAB size" a line, from cursor (0: the start);
   returns the next cursor, 0 at the end (dict_scan: a key there from the
   start to the end of the walk is listed once). */
size_t store_scan_keys(const store_t *self, size_t cursor, const client_t *c,
                       const char *pattern, size_t plen, text_t *out);

/* Appends the store's counters to a stats listing ("store_keys\tN\n"...). */
void store_stats(const store_t *self, text_t *out);

#endif
