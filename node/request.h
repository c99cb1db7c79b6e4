/*  request.h: requests waiting for their reply, with their timers.

    A request is recorded where it is answered from: the node of its
    holder. It is keyed by its requester (a local client, or a client on
    another node, by address) and its id, and fails back to the requester
    when the holder goes, its node is lost, or time runs out. */
#ifndef IPCNET_REQUEST_H
#define IPCNET_REQUEST_H

#include "client.h"
#include "loop.h"
#include "node.h"
#include "peer.h"

#include <stddef.h>
#include <stdint.h>

typedef struct requests requests_t;

struct request {
    requests_t *requests;
    uint8_t key[12 + WIRE_NAME_MAX];    /* requester id, request id, its node */
    size_t keylen;
    uint32_t id;
    client_t *requester;        /* NULL: on peer, at address from */
    client_t *holder;           /* NULL: on peer */
    peer_t *peer;               /* the node of the requester or of the holder */
    char *from;                 /* the requester's address, when on peer */
    char *name;                 /* the name it was sent to, for the policy of its reply */
    loop_timer_t *timer;
    request_t *anext, **aprev;  /* in requester->asked */
    request_t *hnext, **hprev;  /* in holder->held */
};

requests_t *requests_new(loop_t *loop, const node_config_t *config, node_stats_t *stats);
void requests_destroy(requests_t **self_p);

size_t requests_count(const requests_t *self);

/* The timeout a request gets: the one it asks (0: the node's default),
   at most NODE_MAX_REQ_TIMEOUT. */
uint32_t requests_timeout(const requests_t *self, uint32_t asked);

/* Records a pending request: requester is the local client that asked,
   or NULL when from (its address, client id rid_client on node) is on
   peer; holder is the local client that answers, or NULL when it is on
   peer. Expires after timeout ms. Returns 0 with *ret set, -EEXIST (its
   id is pending), -ENOBUFS (the requester, its peer or this node has as
   many pending as it may), -ENOMEM. */
int request_new(requests_t *self, client_t *requester, uint64_t rid_client, uint32_t id,
                const char *from, size_t fromlen, const char *node, size_t nodelen,
                client_t *holder, peer_t *peer, uint32_t timeout, request_t **ret);

/* Keeps the name r was sent to. Returns 0 or -ENOMEM. */
int request_set_name(request_t *r, const char *name, size_t len);

/* Words for request_new's errors, for the requester. */
const char *request_strerror(int err);

/* The request of local client with id, or NULL. */
request_t *requests_find_local(const requests_t *self, uint64_t client, uint32_t id);

/* The request a reply addressed to requester (":N" or ":N@node"; self is
   this node's name) answers, with its id, or NULL. */
request_t *requests_find(const requests_t *self, const char *requester, size_t len, uint32_t id,
                         const char *self_name);

void request_free(request_t *r);

/* Fails a request towards its requester, here or on its node, and frees
   it. */
void request_fail(request_t *r, int err, const char *text);

/* Client c is going: its requests are void, those it held fail. */
void requests_client_gone(requests_t *self, client_t *c);

/* peer was lost: requests waiting on it fail, those it made are void. */
void requests_peer_lost(requests_t *self, peer_t *peer);

#endif
