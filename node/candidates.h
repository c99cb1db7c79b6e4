/*  candidates.h: nodes heard of (gossip, mDNS) and not met yet.

    Anyone who reaches the LAN or a peer can name nodes, so what is heard
    is kept in a bounded pool and dialled at a bounded rate. The pool
    gives way at random when full, and the next to dial is the one whose
    address has the fewest dials under way: a flood of fakes from one
    address can delay a real node, not shut it out. Nodes dialled and
    never answering are remembered for a while, and not believed again.
*/
#ifndef IPCNET_CANDIDATES_H
#define IPCNET_CANDIDATES_H

#include "proto.h"

#include <stddef.h>
#include <stdint.h>

#define CANDIDATE_ENDPOINT_MAX 128
#define CANDIDATES_MAX  256         /* nodes heard of, waiting to be dialled */

typedef struct candidates candidates_t;

typedef struct {
    char endpoint[CANDIDATE_ENDPOINT_MAX];
    uint8_t key[PROTO_KEY_LEN];
    int by_mdns, by_gossip;     /* how it was heard of (both, if twice) */
} candidate_t;

/* rate_cap: dials of nodes not met that may start at once; the bucket
   refills at a quarter of that a second (at least one). */
candidates_t *candidates_new(unsigned rate_cap, int64_t now);
void candidates_destroy(candidates_t **self_p);

/* Keeps a node heard of (by mDNS, else by gossip), unless it waits
   already (then both ways are kept); when the pool is full
   one waiting, chosen at random, gives way (counted, and said now and
   then by candidates_tell). */
void candidates_add(candidates_t *self, const char *endpoint, const uint8_t *key, int by_mdns);
size_t candidates_waiting(const candidates_t *self);

/* Takes a token for one dial if the rate allows: 1, else 0. */
int candidates_token(candidates_t *self, int64_t now);

/* Takes out the next to dial: the one whose host (the endpoint without
   its port) busy() says has the fewest dials under way, at random among
   equals. Returns 1 with *ret filled, or 0 if none waits. */
typedef size_t (candidates_busy_fn) (void *arg, const char *host, size_t len);
int candidates_next(candidates_t *self, candidates_busy_fn *busy, void *arg, candidate_t *ret);

/* The one waiting that about names (its address, with or without
   tcp://, or its id, or 8 digits or more of it): 1 with *ret, or 0. */
int candidates_lookup(const candidates_t *self, const char *about, candidate_t *ret);

/* Takes out the one waiting with this key (met meanwhile, another way):
   1 with *ret, or 0. */
int candidates_take(candidates_t *self, const uint8_t *key, candidate_t *ret);

/* The host of an endpoint "tcp://HOST:PORT" (or "tcp://[V6]:PORT"): its
   start and length. */
const char *candidates_host(const char *endpoint, size_t *len);

/* Nodes dialled and forgotten for never answering: not dialled again
   for five minutes. */
void candidates_failed_add(candidates_t *self, const char *id, int64_t now);
int candidates_failed(const candidates_t *self, const char *id, int64_t now);

/* Says, once a minute at most, how many were dropped since last said
   (the first drop is said at once). */
void candidates_tell(candidates_t *self, int64_t now);

#endif
