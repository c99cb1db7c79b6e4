/*  route.h: where a destination leads: a local client, a holder of a
    name here, or another node.

    A name goes to a local holder when there is one (round robin, those
    with room first), else round robin over the nodes that hold it;
    "name@node" and ":N@node" pin a node. The last destination is cached
    until the directory changes, so a stream of frames to one place is
    resolved once. */
#ifndef IPCNET_ROUTE_H
#define IPCNET_ROUTE_H

#include "wire.h"

#include <stddef.h>
#include <stdint.h>

typedef struct client client_t;
typedef struct peer peer_t;
typedef struct directory directory_t;
struct name;

typedef struct {
    client_t *to;       /* a local client, or */
    peer_t *peer;       /* the node to forward to */
} target_t;

/* Where a destination led; gen 0: empty. */
typedef struct route {
    uint64_t gen;               /* the directory's when filled */
    size_t dlen;
    char dest[WIRE_NAME_MAX];
    client_t *to;               /* a unique address, or */
    peer_t *peer;               /* another node, or */
    struct name *name;          /* a name, picked from at each use */
    int local_only;             /* name@us, or from a peer */
    size_t hlen;                /* the user's: a head it keeps with the route, */
    uint8_t head[WIRE_HEAD_MAX];        /* 0 when the route was found anew */
} route_t;

/* How far a destination may lead. */
enum {
    ROUTE_ANY = 0,      /* a local client's: here or any node */
    ROUTE_HERE = 1,     /* a peer's: only to this node's clients */
};

/* A cache of a client's own: new (empty; NULL when out of memory), freed. */
route_t *route_new(void);
void route_destroy(route_t **self_p);

/* Finds where dest leads, preferring a local holder with room for len
   bytes, and remembers it in cache (may be NULL). Returns 0 with *ret set
   (a local queue may be full, a peer out of credit), -EINVAL (not a
   destination), -EHOSTUNREACH (pinned to a node not up), -ENOENT. */
int route_find(directory_t *dir, route_t *cache, const char *dest, size_t dlen, size_t len,
               int how, target_t *ret);

#endif
