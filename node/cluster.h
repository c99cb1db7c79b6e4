/*  cluster.h: the other nodes. One ZeroMQ ROUTER receives from every peer;
    one DEALER per peer sends to it (docs/protocol-node.md). The cluster
    finds peers (static, gossip), keeps them alive (heartbeats), mirrors
    their names and subscriptions into the server's directory, carries
    messages with credit-based flow control, and fails back every message
    a lost peer did not acknowledge.

    The server owns routing decisions; the cluster owns the sockets. Calls
    from the server are cluster_*; calls back into the server are the
    server_remote_* functions declared here and defined in server.c. */
#ifndef IPCNET_CLUSTER_H
#define IPCNET_CLUSTER_H

#include "loop.h"
#include "node.h"
#include "proto.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cluster cluster_t;
typedef struct peer peer_t;
typedef struct server server_t;
typedef struct client client_t;

/* Binds the ROUTER and dials the static peers. Logs why and returns NULL
   on failure. */
cluster_t *cluster_new(loop_t *loop, server_t *server, const node_config_t *config);

/* Our public key, made in state_dir if it has none, as 40 characters of
   Z85 (protocol section 12). Logs why and returns -1 on failure. */
int cluster_key(const char *state_dir, char txt[41]);

/* Reads "tcp://HOST:PORT[#KEY]" (KEY: 40 Z85 or 64 hex digits) into the
   endpoint and, if given, the key. Returns 0 or -EINVAL. */
int cluster_parse_peer(const char *spec, char *endpoint, size_t size, uint8_t *key,
                       int *has_key);

/* Says goodbye to every peer, closes every socket; safe on NULL. */
void cluster_destroy(cluster_t **self_p);

/* Our id (32 hex digits) and the port the ROUTER is bound to. */
const char *cluster_id(const cluster_t *self);
int cluster_port(const cluster_t *self);

/* Work left over from the last wake-up (ZeroMQ sockets whose edge was
   consumed by a send). Returns 1 if more work is pending. */
int cluster_idle(cluster_t *self);

/* Our local directory changed: a name gained its first local holder (up)
   or lost its last; a pattern gained its first local subscriber or lost
   its last. Told to every peer. */
void cluster_local_name(cluster_t *self, const char *name, size_t len, int up);
void cluster_local_sub(cluster_t *self, const char *pattern, size_t len, int up);

/* The UP peer called name, or NULL. */
peer_t *cluster_find_node(cluster_t *self, const char *name, size_t len);

const char *peer_name(const peer_t *peer);
int peer_is_up(const peer_t *peer);

/* Can a data frame of size payload bytes go to peer now? (credit left,
   ZeroMQ not at its high-water mark). If not, the caller waits: see
   cluster_wait. */
int cluster_room(const peer_t *peer, size_t size);

/* Registers c to be resumed (server_resume) when peer has room again or
   is lost. */
int cluster_wait(peer_t *peer, client_t *c);
void cluster_unwait(peer_t *peer, client_t *c);

/* Data frames; origin is the local client id to fail back if the peer is
   lost before acknowledging (0: none), what the local frame type. Return
   0, or -EHOSTUNREACH if the peer is not up, -ENOMEM. */
int cluster_msg(peer_t *peer, uint8_t kind, uint8_t flags, uint32_t cseq, uint32_t timeout,
                const char *from, size_t fromlen, const char *to, size_t tolen,
                const void *data, size_t size, uint64_t origin);
int cluster_reply(peer_t *peer, uint32_t rid, const char *to, size_t tolen,
                  const char *from, size_t fromlen, const void *data, size_t size,
                  uint64_t origin);

/* Publishing: may every peer with a matching subscription take it now?
   If not, *ret_blocked is the one to wait for. Then send to each. */
int cluster_pub_room(cluster_t *self, const char *topic, size_t len, size_t size,
                     peer_t **ret_blocked);
void cluster_pub(cluster_t *self, const char *topic, size_t len, const char *from,
                 size_t fromlen, const void *data, size_t size, uint64_t origin,
                 uint32_t cseq);

/* The sender of (origin, cseq) has had its answer (an ACK or a FAIL from
   peer): losing peer later must not answer it twice. */
void cluster_settled(peer_t *peer, uint64_t origin, uint32_t cseq);

/* Answers for a peer's client: ACK of a confirmed MSG, FAIL of anything. */
void cluster_ack(peer_t *peer, uint32_t cseq, const char *to, size_t tolen);
void cluster_fail(peer_t *peer, int err, uint32_t cseq, uint8_t what, const char *to,
                  size_t tolen, const char *name, size_t namelen, const char *text);

/* Delivery of a peer's data message (seq, in the peer's epoch) to local
   sockets: hold once per copy queued, release once it is written (or its
   receiver is gone). The peer is acknowledged when all are released. */
uint32_t peer_epoch(const peer_t *peer);
void cluster_hold(peer_t *peer, uint32_t epoch, uint32_t seq);
void cluster_release(peer_t *peer, uint32_t epoch, uint32_t seq);

/* A client a parked message of peer waited for has room (or is gone). */
void cluster_resume(peer_t *peer);

/* Appends the peers listing (IPCNET_Q_PEERS lines) to a text. */
void cluster_list(cluster_t *self,
                  void (*line) (void *arg, const char *fmt, ...), void *arg);

/* --- in server.c: what the cluster tells the server -------------------------- */

enum { REMOTE_DONE = 0, REMOTE_BLOCKED = 1 };

/* A data message from peer, decoded as m from the ZeroMQ message zmsg
   (borrowed; a large payload is kept by reference to it). Returns
   REMOTE_DONE, or REMOTE_BLOCKED with
   *ret_blocked the local client whose full queue holds it back: the
   cluster keeps it and calls again after cluster_resume(). */
int server_remote_data(server_t *s, peer_t *peer, const proto_msg_t *m, void *zmsg,
                       client_t **ret_blocked);
void server_remote_ack(server_t *s, peer_t *peer, const proto_msg_t *m);
void server_remote_fail(server_t *s, peer_t *peer, const proto_msg_t *m);
/* A name or pattern of peer came or went. */
void server_remote_name(server_t *s, peer_t *peer, const char *name, size_t len, int up);
void server_remote_sub(server_t *s, peer_t *peer, const char *pattern, size_t len, int up);
/* peer came up or was lost (after its names and patterns went). */
void server_peer_state(server_t *s, peer_t *peer, int up);
/* peer is about to be freed: no client may keep it. */
void server_peer_forget(server_t *s, peer_t *peer);
/* A message of a local client was not acknowledged by a lost peer. */
void server_fail_origin(server_t *s, uint64_t client, uint32_t cseq, uint8_t what, int err);
/* Resumes clients that waited for a peer. */
void server_resume(server_t *s, client_t *c);
/* Calls fn for every local name and every local subscription pattern, to
   send our state to a new peer. */
void server_each_local(server_t *s, void (*name) (void *arg, const char *s, size_t len),
                       void (*sub) (void *arg, const char *s, size_t len), void *arg);

#endif
