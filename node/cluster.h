/*  cluster.h: the other nodes (docs/protocol-node.md).

    One ZeroMQ ROUTER receives from every peer; each peer is one link
    (peer.h). The cluster finds peers (static, gossip, mDNS), shakes hands
    with them, keeps them alive (heartbeats), mirrors what they hold into
    the directory, hands their data messages to delivery, and reaps the
    links that failed: what they had not acknowledged fails back to its
    senders, and they are dialled again. */
#ifndef IPCNET_CLUSTER_H
#define IPCNET_CLUSTER_H

#include "buf.h"
#include "client.h"
#include "deliver.h"
#include "directory.h"
#include "loop.h"
#include "node.h"
#include "request.h"

typedef struct cluster cluster_t;

/* Binds the ROUTER, dials the static peers, starts mDNS. Logs why and
   returns NULL on failure. */
cluster_t *cluster_new(loop_t *loop, const node_config_t *config, clients_t *clients,
                       directory_t *dir, deliver_t *deliver, requests_t *requests);

/* Says goodbye to every peer, closes every socket; safe on NULL. */
void cluster_destroy(cluster_t **self_p);

/* Hands the state directory to the user the node is about to become. */
void cluster_hand_over(cluster_t *self);

/* Our id (32 hex digits) and the port the ROUTER is bound to. */
const char *cluster_id(const cluster_t *self);
int cluster_port(const cluster_t *self);

/* The store told of peers up and down, and given their STORE_* messages. */
struct store;
void cluster_set_store(cluster_t *self, struct store *store);

/* Idle step: peers whose parked messages a local client now has room for
   hand them on (clients->runnable_peers). */
void cluster_resume_parked(cluster_t *self);

/* Idle step: links that failed are reaped and dialled again. */
void cluster_reap(cluster_t *self);

/* Idle step, last before the loop sleeps: batches leave, sockets whose
   readiness a send may have consumed are read, congested links that can
   write again let their waiters go on. Returns 1 if work is left. */
int cluster_idle(cluster_t *self);

/* One message from a peer, as the ROUTER gives it: the key its connection
   authenticated with (User-Id, 64 hex digits, or NULL), its address, its
   routing id, and the message (borrowed; a large payload may be kept by
   reference). The ROUTER's reader calls it, and so does the fuzzer of the
   node's peer handling. */
void cluster_input(cluster_t *self, const char *uid, const char *peer_address,
                   const void *rid, size_t ridlen, zmq_msg_t *body);

/* Appends the peers listing (IPCNET_Q_PEERS lines, ourselves first). */
void cluster_list(cluster_t *self, text_t *out);

/* What the node knows of the peer about names (its name, id or address)
   and why it is not up, step by step, as lines of text. */
void cluster_diagnose(cluster_t *self, const char *about, text_t *out);

#endif
