/*  route.c: a destination to a local client, a holder of a name, or a
    peer, with one cache of the last destination. */

#include "route.h"
#include "client.h"
#include "directory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

route_t *route_new(void)
{
    return calloc(1, sizeof (route_t));
}

void route_destroy(route_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

/* Picks one local holder of n: round robin, skipping holders whose queue
   is full; if all are, the first live one in turn (the sender waits for
   it). A doomed holder (closed, not yet torn down) holds nothing: NULL if
   no live holder is left. */
static client_t *s_pick(name_t *n, size_t len)
{
    size_t count = n->holders.size;
    client_t *first = NULL;
    for (size_t i = 0; i < count; i++) {
        client_t *h = n->holders.items[(n->next + i) % count];
        if (h->doomed)
            continue;
        if (client_has_room(h, len)) {
            n->next = (n->next + i + 1) % count;
            return h;
        }
        if (!first)
            first = h;
    }
    return first;
}

/* Round robin over the peers that hold n and are up. */
static peer_t *s_pick_peer(name_t *n)
{
    size_t count = n->peers.size;
    for (size_t i = 0; i < count; i++) {
        peer_t *p = n->peers.items[(n->next_peer + i) % count];
        if (peer_is_up(p)) {
            n->next_peer = (n->next_peer + i + 1) % count;
            return p;
        }
    }
    return NULL;
}

/* A name's route: local holders first, then peers. */
static int s_route_name(name_t *n, int local_only, size_t len, target_t *ret)
{
    ret->to = s_pick(n, len);
    ret->peer = ret->to || local_only ? NULL : s_pick_peer(n);
    return ret->to || ret->peer ? 0 : -ENOENT;
}

int route_find(directory_t *dir, route_t *cache, const char *dest, size_t dlen, size_t len,
               int how, target_t *ret)
{
    if (cache && cache->gen == directory_gen(dir) && cache->dlen == dlen &&
        memcmp(cache->dest, dest, dlen) == 0) {
        ret->to = cache->to;
        ret->peer = cache->peer;
        if (cache->name)
            return s_route_name(cache->name, cache->local_only, len, ret);
        return 0;
    }
    uint64_t id;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(dest, dlen, &id, &namelen, &node, &nodelen) < 0)
        return -EINVAL;
    name_t *n = NULL;
    int local_only = nodelen > 0 || how == ROUTE_HERE;
    ret->to = NULL;
    ret->peer = NULL;
    if (!directory_is_self(dir, node, nodelen)) {
        /* Pinned to another node: it must be up, and hold the name. A
           peer's message is not forwarded again (the spec says ENOENT:
           nobody holds it here). */
        if (how == ROUTE_HERE)
            return -ENOENT;
        ret->peer = directory_node(dir, node, nodelen);
        if (!ret->peer)
            return -EHOSTUNREACH;
        if (!id) {
            name_t *held = directory_name(dir, dest, namelen);
            if (!held || !vec_has(&held->peers, ret->peer))
                return -ENOENT;
        }
    } else if (id) {
        ret->to = directory_client(dir, id);
        if (!ret->to)
            return -ENOENT;
    } else {
        n = directory_name(dir, dest, namelen);
        if (!n || s_route_name(n, local_only, len, ret) < 0)
            return -ENOENT;
    }
    if (cache) {
        cache->gen = directory_gen(dir);
        cache->dlen = dlen;
        memcpy(cache->dest, dest, dlen);
        cache->to = n ? NULL : ret->to;
        cache->peer = n ? NULL : ret->peer;
        cache->name = n;
        cache->local_only = local_only;
        cache->hlen = 0;
    }
    return 0;
}
