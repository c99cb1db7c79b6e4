/*  directory.c: clients by id, names, subscriptions and watches, local and
    remote, and the events and the peer messages they cause. */

#include "directory.h"
#include "dict.h"
#include "log.h"

#include <czmq.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* What a peer that is up holds and subscribes to. */
typedef struct {
    peer_t *peer;
    dict_t *names;
    dict_t *subs;
    int64_t last_full_log[2];   /* when we last said it holds too many patterns, names */
} remote_t;

struct directory {
    clients_t *clients;
    const node_config_t *cfg;
    policy_t *policy;
    dict_t *by_id;              /* id -> client_t */
    dict_t *by_uid;             /* uid -> clients of that user (a count) */
    dict_t *names;              /* name -> name_t */
    dict_t *exact_subs;         /* topic -> sub_t, patterns without '*' */
    vec_t prefix_subs;          /* sub_t with a '*' */
    vec_t watchers;             /* client_t watching something */
    vec_t monitors;             /* client_t monitoring what is routed */
    vec_t remotes;              /* remote_t of the peers up */
    proto_buf_t out;            /* lists for peers */
    uint8_t id[WIRE_NODE_ID];   /* our node id, as bytes */
    char id_hex[2 * WIRE_NODE_ID + 1];
    dict_t *claims;             /* node name -> the id (char *) of the node that claimed it */
    char why[400];              /* the words of the last denial */
};

directory_t *directory_new(clients_t *clients, const node_config_t *config, policy_t *policy)
{
    directory_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->clients = clients;
    self->cfg = config;
    self->policy = policy;
    self->by_id = dict_new();
    self->by_uid = dict_new();
    self->names = dict_new();
    self->exact_subs = dict_new();
    self->claims = dict_new();
    if (!self->by_id || !self->by_uid || !self->names || !self->exact_subs || !self->claims) {
        directory_destroy(&self);
        return NULL;
    }
    return self;
}

static void s_name_free(name_t *n)
{
    vec_free(&n->holders);
    vec_free(&n->peers);
    free(n->name);
    free(n);
}

static void s_free_name(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    (void) arg;
    s_name_free(value);
}

static void s_free_claim(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    (void) arg;
    free(value);
}

static void s_remote_free(remote_t *r)
{
    dict_destroy(&r->names);
    dict_destroy(&r->subs);
    free(r);
}

void directory_destroy(directory_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    directory_t *self = *self_p;
    if (self->names)
        dict_each(self->names, s_free_name, NULL);      /* those peers held */
    dict_destroy(&self->names);
    dict_destroy(&self->by_id);
    dict_destroy(&self->by_uid);
    dict_destroy(&self->exact_subs);
    if (self->claims)
        dict_each(self->claims, s_free_claim, NULL);
    dict_destroy(&self->claims);
    vec_free(&self->prefix_subs);
    vec_free(&self->watchers);
    vec_free(&self->monitors);
    for (size_t i = 0; i < self->remotes.size; i++)
        s_remote_free(self->remotes.items[i]);
    vec_free(&self->remotes);
    proto_free(&self->out);
    free(self);
    *self_p = NULL;
}

const char *directory_self(const directory_t *self)
{
    return self->cfg->name;
}

int directory_is_self(const directory_t *self, const char *node, size_t len)
{
    return len == 0 || (len == strlen(self->cfg->name) && memcmp(node, self->cfg->name, len) == 0) ||
           (len == 2 * WIRE_NODE_ID && memcmp(node, self->id_hex, len) == 0);
}

void directory_set_id(directory_t *self, const char *id_hex)
{
    proto_unhex(id_hex, WIRE_NODE_ID, self->id);
    snprintf(self->id_hex, sizeof self->id_hex, "%s", id_hex);
}

const uint8_t *directory_id(const directory_t *self)
{
    return self->id;
}

uint64_t directory_gen(const directory_t *self)
{
    return self->clients->gen;
}

static void s_changed(directory_t *self)
{
    self->clients->gen++;
}

/* --- events -------------------------------------------------------------------------- */

/* Tells every watcher with a pattern that matches subject: event, about
   name on node. */
/* May watcher w see events about subject? */
static int s_may_watch(const directory_t *self, const client_t *w, const char *subject,
                       size_t len)
{
    if (!policy_has(self->policy, POLICY_WATCH))
        return 1;
    policy_who_t who = client_who(w);
    return policy_check(self->policy, &who, POLICY_WATCH, subject, len, NULL) != 0;
}

static void s_notify(directory_t *self, const char *subject, size_t slen, int event,
                     const char *name, size_t nlen, const char *node)
{
    for (size_t i = 0; i < self->watchers.size; i++) {
        client_t *w = self->watchers.items[i];
        for (size_t j = 0; j < w->watches.size; j++) {
            const char *p = w->watches.items[j];
            if (wire_match(p, strlen(p), subject, slen)) {
                if (!s_may_watch(self, w, subject, slen))
                    break;
                client_send_control(w, WIRE_EVENT, 0, 0, (uint32_t) event, name, nlen,
                                    node, strlen(node), NULL, 0);
                break;
            }
        }
    }
}

static void s_name_event(directory_t *self, const char *name, size_t len, int event,
                         const char *node)
{
    s_notify(self, name, len, event, name, len, node);
}

/* --- telling peers ------------------------------------------------------------------- */

/* One name or pattern of ours came or went: every peer up is told. */
static void s_tell_all(directory_t *self, uint8_t type, const char *s, size_t len)
{
    if (self->remotes.size == 0)
        return;
    proto_list_begin(&self->out, type);
    proto_list_add(&self->out, s, len);
    for (size_t i = 0; i < self->remotes.size; i++) {
        remote_t *r = self->remotes.items[i];
        if (peer_is_up(r->peer))
            peer_send_encoded(r->peer, &self->out);
    }
}

/* Adds an item to the list being built for peer, sending the list first
   if it is of another type or full. */
static void s_list_item(directory_t *self, peer_t *peer, uint8_t type, const char *s, size_t len)
{
    unsigned count = proto_list_count(&self->out);
    if (count > 0 && (self->out.data[2] != type || count == PROTO_LIST_MAX)) {
        peer_send_encoded(peer, &self->out);
        count = 0;
    }
    if (count == 0)
        proto_list_begin(&self->out, type);
    proto_list_add(&self->out, s, len);
}

typedef struct {
    directory_t *dir;
    peer_t *peer;
} tell_t;

static void s_tell_name(const void *key, size_t len, void *value, void *arg)
{
    tell_t *t = arg;
    if (((name_t *) value)->holders.size > 0)
        s_list_item(t->dir, t->peer, P_NAMES_ADD, key, len);
}

static void s_tell_sub(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    tell_t *t = arg;
    s_list_item(t->dir, t->peer, P_SUBS_ADD, key, len);
}

/* Every name we hold and pattern we subscribe to, to a new peer. */
static void s_tell_state(directory_t *self, peer_t *peer)
{
    tell_t t = { self, peer };
    self->out.len = 0;
    dict_each(self->names, s_tell_name, &t);
    dict_each(self->exact_subs, s_tell_sub, &t);
    for (size_t i = 0; i < self->prefix_subs.size; i++) {
        sub_t *p = self->prefix_subs.items[i];
        s_list_item(self, peer, P_SUBS_ADD, p->pattern, strlen(p->pattern));
    }
    if (proto_list_count(&self->out) > 0)
        peer_send_encoded(peer, &self->out);
}

/* --- clients ------------------------------------------------------------------------- */

/* The uid's count of clients, kept as the value itself. */
static void s_count_uid(directory_t *self, uid_t uid, int delta)
{
    uintptr_t n = (uintptr_t) dict_get(self->by_uid, &uid, sizeof uid) + (uintptr_t) (intptr_t) delta;
    if (n == 0)
        dict_del(self->by_uid, &uid, sizeof uid);
    else
        dict_put(self->by_uid, &uid, sizeof uid, (void *) n);
}

int directory_add_client(directory_t *self, client_t *c)
{
    if (dict_put(self->by_id, &c->id, sizeof c->id, c) < 0)
        return -ENOMEM;
    if (dict_put(self->by_uid, &c->cred.uid, sizeof c->cred.uid,
                 (void *) ((uintptr_t) directory_clients_of(self, c->cred.uid) + 1)) < 0) {
        dict_del(self->by_id, &c->id, sizeof c->id);
        return -ENOMEM;
    }
    return 0;
}

size_t directory_clients_of(const directory_t *self, uid_t uid)
{
    return (uintptr_t) dict_get(self->by_uid, &uid, sizeof uid);
}

client_t *directory_client(const directory_t *self, uint64_t id)
{
    client_t *c = dict_get(self->by_id, &id, sizeof id);
    return c && !c->doomed && c->ready ? c : NULL;
}

size_t directory_nclients(const directory_t *self)
{
    return dict_size(self->by_id);
}

typedef struct {
    void (*fn) (client_t *c, void *arg);
    void *arg;
} each_client_t;

static void s_each_client(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    each_client_t *e = arg;
    e->fn(value, e->arg);
}

void directory_each_client(const directory_t *self, void (*fn) (client_t *c, void *arg),
                           void *arg)
{
    each_client_t e = { fn, arg };
    dict_each(self->by_id, s_each_client, &e);
}

size_t directory_scan_clients(const directory_t *self, size_t cursor,
                              void (*fn) (client_t *c, void *arg), void *arg)
{
    each_client_t e = { fn, arg };
    return dict_scan(self->by_id, cursor, s_each_client, &e);
}

/* --- names --------------------------------------------------------------------------- */

static name_t *s_name_get(directory_t *self, const char *name, size_t len)
{
    name_t *n = dict_get(self->names, name, len);
    if (n)
        return n;
    n = calloc(1, sizeof *n);
    if (!n || !(n->name = buf_strndup(name, len)) || dict_put(self->names, name, len, n) < 0) {
        if (n)
            free(n->name);
        free(n);
        return NULL;
    }
    return n;
}

/* Frees n once nobody, here or on a peer, holds it. */
static void s_name_gc(directory_t *self, name_t *n)
{
    if (n->holders.size > 0 || n->peers.size > 0)
        return;
    dict_del(self->names, n->name, strlen(n->name));
    s_name_free(n);
}

name_t *directory_name(const directory_t *self, const char *name, size_t len)
{
    return dict_get(self->names, name, len);
}

size_t directory_nnames(const directory_t *self)
{
    return dict_size(self->names);
}

typedef struct {
    void (*fn) (name_t *n, void *arg);
    void *arg;
} each_name_t;

static void s_each_name(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    each_name_t *e = arg;
    e->fn(value, e->arg);
}

void directory_each_name(const directory_t *self, void (*fn) (name_t *n, void *arg), void *arg)
{
    each_name_t e = { fn, arg };
    dict_each(self->names, s_each_name, &e);
}

size_t directory_scan_names(const directory_t *self, size_t cursor,
                            void (*fn) (name_t *n, void *arg), void *arg)
{
    each_name_t e = { fn, arg };
    return dict_scan(self->names, cursor, s_each_name, &e);
}

/* Does a client of another user than c hold n here? */
static int s_held_by_other(const name_t *n, const client_t *c)
{
    for (size_t i = 0; n && i < n->holders.size; i++)
        if (((client_t *) n->holders.items[i])->cred.uid != c->cred.uid)
            return 1;
    return 0;
}

/* May c do action with name (or pattern)? 1, or 0 with *ret_why set. */
static int s_allowed(directory_t *self, const client_t *c, int action, const char *what,
                     const char *name, size_t len, const char **ret_why)
{
    const char *rule = NULL;
    policy_who_t who = client_who(c);
    if (policy_check(self->policy, &who, action, name, len, &rule) != 0)
        return 1;
    policy_log_denial(&who, what, name, len, rule);
    *ret_why = policy_denial(self->why, sizeof self->why, rule);
    return 0;
}

int directory_bind(directory_t *self, client_t *c, const char *name, size_t len,
                   const char **ret_why)
{
    name_t *n = dict_get(self->names, name, len);
    if (n && vec_has(&n->holders, c))
        return -EEXIST;
    /* A name is its holder's user's: another user takes it only as root,
       or where a rule says so. */
    policy_who_t who = client_who(c);
    const char *rule = NULL;
    int verdict = policy_check(self->policy, &who, POLICY_BIND, name, len, &rule);
    if (verdict == 0) {
        policy_log_denial(&who, "bind", name, len, rule);
        *ret_why = policy_denial(self->why, sizeof self->why, rule);
        return -EACCES;
    }
    if (verdict < 0 && c->cred.uid != 0 && s_held_by_other(n, c)) {
        *ret_why = "held by another user";
        return -EACCES;
    }
    if (c->names.size >= self->cfg->max_names)
        return -ENOBUFS;
    if (!(n = s_name_get(self, name, len)))
        return -ENOMEM;
    if (vec_push(&n->holders, c) < 0 || vec_push(&c->names, n) < 0) {
        vec_remove(&n->holders, c);
        s_name_gc(self, n);
        return -ENOMEM;
    }
    if (n->holders.size == 1) {
        s_name_event(self, name, len, WIRE_EV_NAME_UP, self->cfg->name);
        s_tell_all(self, P_NAMES_ADD, name, len);
    }
    s_changed(self);
    return 0;
}

static void s_unbind(directory_t *self, client_t *c, name_t *n)
{
    vec_remove(&c->names, n);
    vec_remove(&n->holders, c);
    s_changed(self);
    if (n->holders.size > 0)
        return;
    size_t len = strlen(n->name);
    s_name_event(self, n->name, len, WIRE_EV_NAME_DOWN, self->cfg->name);
    s_tell_all(self, P_NAMES_DEL, n->name, len);
    s_name_gc(self, n);
}

int directory_unbind(directory_t *self, client_t *c, const char *name, size_t len)
{
    name_t *n = dict_get(self->names, name, len);
    if (!n || !vec_has(&n->holders, c))
        return -ENOENT;
    s_unbind(self, c, n);
    return 0;
}

/* --- subscriptions ---------------------------------------------------------------------- */

static sub_t *s_find_sub(const vec_t *subs, const char *pattern, size_t len)
{
    for (size_t i = 0; i < subs->size; i++) {
        sub_t *sub = subs->items[i];
        if (strlen(sub->pattern) == len && memcmp(sub->pattern, pattern, len) == 0)
            return sub;
    }
    return NULL;
}

int directory_subscribe(directory_t *self, client_t *c, const char *pattern, size_t len,
                        const char **ret_why)
{
    if (!s_allowed(self, c, POLICY_SUBSCRIBE, "subscribe", pattern, len, ret_why))
        return -EACCES;
    int prefix = pattern[len - 1] == '*';
    sub_t *sub = prefix ? s_find_sub(&self->prefix_subs, pattern, len)
                        : dict_get(self->exact_subs, pattern, len);
    if (sub && vec_has(&sub->clients, c))
        return -EEXIST;
    if (c->subs.size >= self->cfg->max_subs)
        return -ENOBUFS;
    if (!sub) {
        sub = calloc(1, sizeof *sub);
        if (!sub || !(sub->pattern = buf_strndup(pattern, len)) ||
            (prefix ? vec_push(&self->prefix_subs, sub)
                    : dict_put(self->exact_subs, pattern, len, sub)) < 0) {
            if (sub)
                free(sub->pattern);
            free(sub);
            return -ENOMEM;
        }
        sub->prefix = prefix;
    }
    if (vec_push(&sub->clients, c) < 0)
        return -ENOMEM;     /* an empty sub_t stays until its pattern is reused */
    if (vec_push(&c->subs, sub) < 0) {
        vec_remove(&sub->clients, c);
        return -ENOMEM;
    }
    if (sub->clients.size == 1)
        s_tell_all(self, P_SUBS_ADD, pattern, len);
    return 0;
}

static void s_unsubscribe(directory_t *self, client_t *c, sub_t *sub)
{
    vec_remove(&c->subs, sub);
    vec_remove(&sub->clients, c);
    if (sub->clients.size > 0)
        return;
    s_tell_all(self, P_SUBS_DEL, sub->pattern, strlen(sub->pattern));
    if (sub->prefix)
        vec_remove(&self->prefix_subs, sub);
    else
        dict_del(self->exact_subs, sub->pattern, strlen(sub->pattern));
    vec_free(&sub->clients);
    free(sub->pattern);
    free(sub);
}

int directory_unsubscribe(directory_t *self, client_t *c, const char *pattern, size_t len)
{
    sub_t *sub = s_find_sub(&c->subs, pattern, len);
    if (!sub)
        return -ENOENT;
    s_unsubscribe(self, c, sub);
    return 0;
}

sub_t *directory_exact_sub(const directory_t *self, const char *topic, size_t len)
{
    return dict_get(self->exact_subs, topic, len);
}

const vec_t *directory_prefix_subs(const directory_t *self)
{
    return &self->prefix_subs;
}

size_t directory_nsubs(const directory_t *self)
{
    return dict_size(self->exact_subs) + self->prefix_subs.size;
}

/* Does one of a peer's patterns match topic? */
typedef struct {
    const char *topic;
    size_t len;
    int hit;
} match_t;

static void s_match(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    match_t *m = arg;
    if (!m->hit && wire_match(key, len, m->topic, m->len))
        m->hit = 1;
}

size_t directory_remote_subscribers(directory_t *self, const char *topic, size_t len,
                                    vec_t *ret)
{
    ret->size = 0;
    for (size_t i = 0; i < self->remotes.size; i++) {
        remote_t *r = self->remotes.items[i];
        match_t m = { topic, len, 0 };
        if (peer_is_up(r->peer) && dict_size(r->subs) > 0)
            dict_each(r->subs, s_match, &m);
        if (m.hit && vec_push(ret, r->peer) < 0)
            break;
    }
    return ret->size;
}

/* --- watches --------------------------------------------------------------------------- */

static size_t s_find_watch(const client_t *c, const char *pattern, size_t len)
{
    for (size_t i = 0; i < c->watches.size; i++) {
        const char *p = c->watches.items[i];
        if (strlen(p) == len && memcmp(p, pattern, len) == 0)
            return i;
    }
    return SIZE_MAX;
}

int directory_watch(directory_t *self, client_t *c, const char *pattern, size_t len,
                    const char **ret_why)
{
    if (!s_allowed(self, c, POLICY_WATCH, "watch", pattern, len, ret_why))
        return -EACCES;
    if (s_find_watch(c, pattern, len) != SIZE_MAX)
        return -EEXIST;
    if (c->watches.size >= self->cfg->max_watches)
        return -ENOBUFS;
    char *p = buf_strndup(pattern, len);
    if (!p || vec_push(&c->watches, p) < 0) {
        free(p);
        return -ENOMEM;
    }
    if (c->watches.size == 1 && vec_push(&self->watchers, c) < 0) {
        free(c->watches.items[--c->watches.size]);
        return -ENOMEM;
    }
    return 0;
}

int directory_unwatch(directory_t *self, client_t *c, const char *pattern, size_t len)
{
    size_t i = s_find_watch(c, pattern, len);
    if (i == SIZE_MAX)
        return -ENOENT;
    free(c->watches.items[i]);
    c->watches.items[i] = c->watches.items[--c->watches.size];
    if (c->watches.size == 0)
        vec_remove(&self->watchers, c);
    return 0;
}

typedef struct {
    directory_t *dir;
    client_t *watcher;
    const char *pattern;
    size_t len;
} snapshot_t;

static void s_snapshot_name(const void *key, size_t len, void *value, void *arg)
{
    name_t *n = value;
    snapshot_t *s = arg;
    if (!wire_match(s->pattern, s->len, key, len) || !s_may_watch(s->dir, s->watcher, key, len))
        return;
    const char *self_name = s->dir->cfg->name;
    if (n->holders.size > 0)
        client_send_control(s->watcher, WIRE_EVENT, 0, 0, WIRE_EV_NAME_UP, key, len,
                            self_name, strlen(self_name), NULL, 0);
    for (size_t i = 0; i < n->peers.size; i++) {
        const char *node = peer_name(n->peers.items[i]);
        client_send_control(s->watcher, WIRE_EVENT, 0, 0, WIRE_EV_NAME_UP, key, len,
                            node, strlen(node), NULL, 0);
    }
}

void directory_watch_snapshot(directory_t *self, client_t *c, const char *pattern, size_t len)
{
    snapshot_t s = { self, c, pattern, len };
    dict_each(self->names, s_snapshot_name, &s);
}

void directory_client_gone(directory_t *self, client_t *c)
{
    if (dict_del(self->by_id, &c->id, sizeof c->id))
        s_count_uid(self, c->cred.uid, -1);
    while (c->names.size > 0)
        s_unbind(self, c, c->names.items[c->names.size - 1]);
    while (c->subs.size > 0)
        s_unsubscribe(self, c, c->subs.items[c->subs.size - 1]);
    if (c->watches.size > 0)
        vec_remove(&self->watchers, c);
    for (size_t i = 0; i < c->watches.size; i++)
        free(c->watches.items[i]);
    c->watches.size = 0;
    if (c->monitor) {
        vec_remove(&self->monitors, c);
        free(c->monitor);
        c->monitor = NULL;
    }
}

int directory_monitor(directory_t *self, client_t *c, const char *pattern, size_t len)
{
    char *p = len ? strndup(pattern, len) : strdup("*");
    if (!p)
        return -ENOMEM;
    if (!c->monitor && vec_push(&self->monitors, c) < 0) {
        free(p);
        return -ENOMEM;
    }
    free(c->monitor);
    c->monitor = p;
    return 0;
}

const vec_t *directory_monitors(const directory_t *self)
{
    return &self->monitors;
}

/* --- other nodes -------------------------------------------------------------------- */

static remote_t *s_remote(const directory_t *self, const peer_t *peer, size_t *ret_index)
{
    for (size_t i = 0; i < self->remotes.size; i++) {
        remote_t *r = self->remotes.items[i];
        if (r->peer == peer) {
            if (ret_index)
                *ret_index = i;
            return r;
        }
    }
    return NULL;
}

static void s_claim(directory_t *self, peer_t *peer);

/* What peer holds, made when it first tells (which may be before it is
   up here: its HELLO came, our HELLO's answer not yet). */
static remote_t *s_remote_get(directory_t *self, peer_t *peer)
{
    remote_t *r = s_remote(self, peer, NULL);
    if (r)
        return r;
    r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->peer = peer;
    r->last_full_log[0] = r->last_full_log[1] = INT64_MIN / 2;
    if (!(r->names = dict_new()) || !(r->subs = dict_new()) || vec_push(&self->remotes, r) < 0) {
        s_remote_free(r);
        return NULL;
    }
    return r;
}

void directory_peer_state(directory_t *self, peer_t *peer, int up)
{
    s_changed(self);
    if (up)
        s_claim(self, peer);
    if (up && s_remote_get(self, peer))
        s_tell_state(self, peer);
    const char *node = peer_name(peer);
    size_t len = strlen(node);
    s_notify(self, node, len, up ? WIRE_EV_PEER_UP : WIRE_EV_PEER_DOWN, node, len, node);
}

/* A name of peer came or went. */
static void s_remote_name(directory_t *self, peer_t *peer, const char *name, size_t len, int up)
{
    name_t *n = up ? s_name_get(self, name, len) : dict_get(self->names, name, len);
    if (!n)
        return;
    if (up ? vec_push(&n->peers, peer) < 0 : !vec_remove(&n->peers, peer)) {
        s_name_gc(self, n);
        return;
    }
    s_changed(self);
    s_name_event(self, name, len, up ? WIRE_EV_NAME_UP : WIRE_EV_NAME_DOWN, peer_name(peer));
    if (!up)
        s_name_gc(self, n);
}

typedef struct {
    directory_t *dir;
    peer_t *peer;
} forget_t;

static void s_forget_name(const void *key, size_t len, void *value, void *arg)
{
    (void) value;
    forget_t *f = arg;
    s_remote_name(f->dir, f->peer, key, len, 0);
}

void directory_peer_forget(directory_t *self, peer_t *peer)
{
    size_t i;
    remote_t *r = s_remote(self, peer, &i);
    s_changed(self);
    if (!r)
        return;
    self->remotes.items[i] = self->remotes.items[--self->remotes.size];
    forget_t f = { self, peer };
    dict_each(r->names, s_forget_name, &f);
    s_remote_free(r);
}

void directory_peer_list(directory_t *self, peer_t *peer, const proto_msg_t *m)
{
    remote_t *r = s_remote_get(self, peer);
    if (!r)
        return;
    const uint8_t *at = m->list;
    int add = m->type == P_NAMES_ADD || m->type == P_SUBS_ADD;
    int names = m->type == P_NAMES_ADD || m->type == P_NAMES_DEL;
    dict_t *d = names ? r->names : r->subs;
    size_t limit = names ? self->cfg->max_peer_names : self->cfg->max_peer_subs;
    for (unsigned i = 0; i < m->count; i++) {
        const char *s;
        size_t len;
        proto_list_next(&at, &s, &len);
        int had = dict_get(d, s, len) != NULL;
        if (add == had)
            continue;
        if (add && dict_size(d) >= limit) {
            /* Past our limit: the rest is not taken, and we say so now
               and then. The link stays for what was taken. */
            int64_t now = loop_clock_ms();
            if (now - r->last_full_log[names != 0] > 60000) {
                log_warning("peer %s holds more than %zu %s (--max-peer-%s): ignoring the rest",
                            peer_name(peer), limit, names ? "names" : "patterns",
                            names ? "names" : "subscriptions");
                r->last_full_log[names != 0] = now;
            }
            continue;
        }
        if (add && dict_put(d, s, len, (void *) 1) < 0)
            continue;
        if (!add)
            dict_del(d, s, len);
        if (names)
            s_remote_name(self, peer, s, len, add);
        else
            s_changed(self);
    }
}

/* A node name is the first key's that says it: the claim stays while the
   cluster knows that node, whatever others say. */
static void s_claim(directory_t *self, peer_t *peer)
{
    const char *name = peer_name(peer), *id = peer_id(peer);
    const char *owner = dict_get(self->claims, name, strlen(name));
    if (!owner) {
        char *copy = buf_strndup(id, strlen(id));
        if (copy && dict_put(self->claims, name, strlen(name), copy) < 0)
            free(copy);
    } else if (strcmp(owner, id) != 0)
        log_warning("node %.8s says it is '%s', a name node %.8s claimed first: '%s' means "
                    "%.8s; address this one by its id, NAME@%s", id, name, owner, name, owner,
                    id);
}

int directory_owns_name(const directory_t *self, const peer_t *peer)
{
    const char *name = peer_name(peer);
    const char *owner = dict_get(self->claims, name, strlen(name));
    return !owner || strcmp(owner, peer_id(peer)) == 0;
}

void directory_peer_release(directory_t *self, peer_t *peer)
{
    const char *name = peer_name(peer);
    const char *owner = dict_get(self->claims, name, strlen(name));
    if (owner && strcmp(owner, peer_id(peer)) == 0)
        free(dict_del(self->claims, name, strlen(name)));
}

peer_t *directory_node(const directory_t *self, const char *name, size_t len)
{
    /* By id (32 hex digits), or by name: the node that claimed it. */
    int by_id = len == PROTO_ID_LEN && proto_check_id(name, len) == 0;
    const char *owner = by_id ? NULL : dict_get(self->claims, name, len);
    for (size_t i = 0; i < self->remotes.size; i++) {
        peer_t *p = ((remote_t *) self->remotes.items[i])->peer;
        if (!peer_is_up(p))
            continue;
        if (by_id ? memcmp(peer_id(p), name, len) == 0
                  : owner ? strcmp(peer_id(p), owner) == 0
                          : strlen(peer_name(p)) == len && memcmp(peer_name(p), name, len) == 0)
            return p;
    }
    return NULL;
}
