/*  request.c: pending requests, their timers, failing and expiring them. */

#include "request.h"
#include "dict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct requests {
    loop_t *loop;
    const node_config_t *cfg;
    node_stats_t *stats;
    dict_t *by_key;             /* key -> request_t */
    dict_t *of_peer;            /* peer -> pending requests its clients made (a count) */
};

requests_t *requests_new(loop_t *loop, const node_config_t *config, node_stats_t *stats)
{
    requests_t *self = calloc(1, sizeof *self);
    if (!self || !(self->by_key = dict_new()) || !(self->of_peer = dict_new())) {
        if (self)
            dict_destroy(&self->by_key);
        free(self);
        return NULL;
    }
    self->loop = loop;
    self->cfg = config;
    self->stats = stats;
    return self;
}

void requests_destroy(requests_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dict_destroy(&(*self_p)->by_key);
    dict_destroy(&(*self_p)->of_peer);
    free(*self_p);
    *self_p = NULL;
}

size_t requests_count(const requests_t *self)
{
    return dict_size(self->by_key);
}

uint32_t requests_timeout(const requests_t *self, uint32_t asked)
{
    uint32_t timeout = asked ? asked : self->cfg->request_timeout;
    return timeout > NODE_MAX_REQ_TIMEOUT ? NODE_MAX_REQ_TIMEOUT : timeout;
}

/* A request's key: requester id and request id, and for a request made on
   another node, that node's name. */
static size_t s_key(uint8_t *key, uint64_t requester, uint32_t id, const char *node,
                    size_t nodelen)
{
    memcpy(key, &requester, 8);
    memcpy(key + 8, &id, 4);
    memcpy(key + 12, node, nodelen);
    return 12 + nodelen;
}

/* How many pending requests peer's clients made of ours. */
static uintptr_t s_of_peer_count(const requests_t *self, const peer_t *peer)
{
    return (uintptr_t) dict_get(self->of_peer, &peer, sizeof peer);
}

static void s_of_peer_add(requests_t *self, const peer_t *peer, int delta)
{
    uintptr_t n = s_of_peer_count(self, peer) + (uintptr_t) (intptr_t) delta;
    if (n == 0)
        dict_del(self->of_peer, &peer, sizeof peer);
    else
        dict_put(self->of_peer, &peer, sizeof peer, (void *) n);
}

void request_free(request_t *r)
{
    requests_t *self = r->requests;
    dict_del(self->by_key, r->key, r->keylen);
    if (r->requester)
        r->requester->nasked--;
    else if (r->peer)
        s_of_peer_add(self, r->peer, -1);
    loop_timer_cancel(self->loop, r->timer);
    if (r->aprev && (*r->aprev = r->anext))
        r->anext->aprev = r->aprev;
    if (r->hprev && (*r->hprev = r->hnext))
        r->hnext->hprev = r->hprev;
    free(r->from);
    free(r->name);
    free(r);
}

int request_set_name(request_t *r, const char *name, size_t len)
{
    free(r->name);
    r->name = buf_strndup(name, len);
    return r->name ? 0 : -ENOMEM;
}

void request_fail(request_t *r, int err, const char *text)
{
    r->requests->stats->errors++;
    if (r->requester)
        client_send_control(r->requester, WIRE_ERROR, WIRE_REQUEST, r->id, (uint32_t) err,
                            NULL, 0, text, strlen(text), NULL, 0);
    else if (r->peer && r->from)
        peer_send_fail(r->peer, err, r->id, WIRE_REQUEST, r->from, strlen(r->from), NULL, 0,
                       text);
    request_free(r);
}

static void s_expired(loop_t *loop, void *arg)
{
    (void) loop;
    request_t *r = arg;
    r->timer = NULL;        /* the loop freed it */
    if (r->requester)
        request_fail(r, ETIMEDOUT, "no reply in time");
    else
        request_free(r);    /* the requester's node decides */
}

request_t *requests_find_local(const requests_t *self, uint64_t client, uint32_t id)
{
    uint8_t key[12];
    return dict_get(self->by_key, key, s_key(key, client, id, "", 0));
}

request_t *requests_find(const requests_t *self, const char *requester, size_t len, uint32_t id,
                         const char *self_name)
{
    uint64_t client;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(requester, len, &client, &namelen, &node, &nodelen) < 0 || !client)
        return NULL;
    int here = nodelen == 0 ||
               (nodelen == strlen(self_name) && memcmp(node, self_name, nodelen) == 0);
    uint8_t key[12 + WIRE_NAME_MAX];
    size_t keylen = here ? s_key(key, client, id, "", 0) : s_key(key, client, id, node, nodelen);
    return dict_get(self->by_key, key, keylen);
}

const char *request_strerror(int err)
{
    return err == -EEXIST ? "request id in use"
         : err == -ENOBUFS ? "too many pending requests (--max-requests, --max-node-requests, "
                             "--max-peer-requests)"
         : "out of memory";
}

int request_new(requests_t *self, client_t *requester, uint64_t rid_client, uint32_t id,
                const char *from, size_t fromlen, const char *node, size_t nodelen,
                client_t *holder, peer_t *peer, uint32_t timeout, request_t **ret)
{
    const node_config_t *cfg = self->cfg;
    if (dict_size(self->by_key) >= cfg->max_node_requests ||
        (requester && requester->nasked >= cfg->max_requests) ||
        (!requester && peer && s_of_peer_count(self, peer) >= cfg->max_peer_requests))
        return -ENOBUFS;
    request_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->requests = self;
    r->keylen = s_key(r->key, rid_client, id, node, nodelen);
    if (dict_get(self->by_key, r->key, r->keylen)) {
        free(r);
        return -EEXIST;
    }
    if (from && !(r->from = buf_strndup(from, fromlen))) {
        free(r);
        return -ENOMEM;
    }
    r->id = id;
    r->requester = requester;
    r->holder = holder;
    r->peer = peer;
    r->timer = loop_timer_add(self->loop, timeout, s_expired, r);
    if (!r->timer || dict_put(self->by_key, r->key, r->keylen, r) < 0) {
        loop_timer_cancel(self->loop, r->timer);
        free(r->from);
        free(r);
        return -ENOMEM;
    }
    if (requester)
        requester->nasked++;
    else if (peer)
        s_of_peer_add(self, peer, 1);
    if (requester) {
        if ((r->anext = requester->asked))
            requester->asked->aprev = &r->anext;
        r->aprev = &requester->asked;
        requester->asked = r;
    }
    if (holder) {
        if ((r->hnext = holder->held))
            holder->held->hprev = &r->hnext;
        r->hprev = &holder->held;
        holder->held = r;
    }
    *ret = r;
    return 0;
}

void requests_client_gone(requests_t *self, client_t *c)
{
    (void) self;
    while (c->asked)
        request_free(c->asked);
    while (c->held)
        request_fail(c->held, ECONNRESET, "the holder went away before replying");
}

typedef struct {
    peer_t *peer;
    vec_t found;
} of_peer_t;

static void s_of_peer(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    request_t *r = value;
    of_peer_t *o = arg;
    if (r->peer == o->peer)
        vec_push(&o->found, r);
}

void requests_peer_lost(requests_t *self, peer_t *peer)
{
    of_peer_t o = { peer, { 0 } };
    dict_each(self->by_key, s_of_peer, &o);
    for (size_t i = 0; i < o.found.size; i++) {
        request_t *r = o.found.items[i];
        if (r->requester)
            request_fail(r, EHOSTUNREACH, "the node holding it was lost");
        else
            request_free(r);
    }
    vec_free(&o.found);
}
