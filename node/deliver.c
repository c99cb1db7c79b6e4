/*  deliver.c: messages from clients and peers to their receivers. */

#include "deliver.h"
#include "route.h"
#include "shm.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct deliver {
    clients_t *clients;
    directory_t *dir;
    requests_t *requests;
    policy_t *policy;
    const node_config_t *cfg;
    node_stats_t *stats;
    route_t peer_route;         /* where the last message from a peer led */
    struct {                    /* the last check of a peer's client's message */
        uint64_t gen;           /* the policy's; 0: empty */
        uint64_t dgen;          /* the directory's: names held, node names claimed */
        const peer_t *peer;
        uint32_t uid;
        int action;
        char user[WIRE_USER_MAX + 1];
        size_t len;
        char name[WIRE_NAME_MAX];
        int allowed;
        const char *rule;
    } remote_check;
    char why[400];              /* the words of the last denial */
    uint32_t pub_epoch;         /* one per publication, so a client gets it once */
    vec_t peers;                /* the peers a publication goes to */
};

/* A message sent with CONFIRM was written to its receiver's socket (err
   0), or the receiver went before (ECONNRESET): its sender hears it, here
   or on the node it came from. */
static void s_confirmed(void *arg, const confirm_t *k, int err)
{
    deliver_t *self = arg;
    const char *name = k->strings + k->fromlen;
    static const char gone[] = "the receiver went away before the message was written to it";
    if (k->peer) {
        if (!peer_is_up(k->peer))
            return;     /* lost meanwhile: it fails its flights itself */
        if (err == 0)
            peer_send_ack(k->peer, k->seq, k->strings, k->fromlen);
        else
            peer_send_fail(k->peer, err, k->seq, k->what, k->strings, k->fromlen, name,
                           k->namelen, gone);
        return;
    }
    client_t *c = directory_client(self->dir, k->client);
    if (!c || c->doomed)
        return;
    if (err == 0)
        client_send_control(c, WIRE_OK, 0, k->seq, 0, NULL, 0, NULL, 0, NULL, 0);
    else
        client_send_control(c, WIRE_ERROR, k->what, k->seq, (uint32_t) err, name, k->namelen,
                            gone, sizeof gone - 1, NULL, 0);
}

deliver_t *deliver_new(clients_t *clients, directory_t *dir, requests_t *requests,
                       policy_t *policy, const node_config_t *config, node_stats_t *stats)
{
    deliver_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->clients = clients;
    self->dir = dir;
    self->requests = requests;
    self->policy = policy;
    self->cfg = config;
    self->stats = stats;
    clients->confirmed.fn = s_confirmed;
    clients->confirmed.arg = self;
    return self;
}

void deliver_destroy(deliver_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    vec_free(&(*self_p)->peers);
    free(*self_p);
    *self_p = NULL;
}

/* Who a local client is, as its receivers are told. */
static wire_from_t s_from_client(const deliver_t *self, const client_t *c)
{
    return (wire_from_t) { c->cred.uid, c->user, c->userlen, directory_id(self->dir) };
}

/* Who a peer's client is: what the peer says of it, and the peer's id. */
static wire_from_t s_from_peer(const peer_t *peer, const proto_msg_t *m)
{
    return (wire_from_t) { m->uid, m->user, m->userlen, peer_key(peer) };
}

/* The name a policy rule is matched against: the name of "name" or
   "name@node", or a unique address whole. */
static size_t s_policy_name(const char *dest, size_t len)
{
    if (len > 0 && dest[0] == ':')
        return len;
    const char *at = memchr(dest, '@', len);
    return at ? (size_t) (at - dest) : len;
}

static const char *s_action_name(int action)
{
    return action == POLICY_SEND ? "send" : action == POLICY_REQUEST ? "request"
         : action == POLICY_REPLY ? "reply" : action == POLICY_PUBLISH ? "publish"
         : "subscribe";
}

/* May local client c do action with name? 1, or 0 with the words of the
   denial in *ret_why (logged). */
static client_t *s_local_client(deliver_t *self, const char *addr, size_t len);

/* The verdict on action to name by who: 1 allowed, 0 denied (*ret_rule).
   A message to the unique address of a client here is also judged by
   every name that client holds, so that "deny send printer" is not passed
   by sending to the printer's holder by its address. */
static int s_verdict(deliver_t *self, const policy_who_t *who, int action, const char *name,
                     size_t len, const char **ret_rule)
{
    if (policy_check(self->policy, who, action, name, len, ret_rule) == 0)
        return 0;
    if ((action != POLICY_SEND && action != POLICY_REQUEST) || len == 0 || name[0] != ':')
        return 1;
    const client_t *to = s_local_client(self, name, len);
    for (size_t i = 0; to && i < to->names.size; i++) {
        const name_t *n = to->names.items[i];
        if (policy_check(self->policy, who, action, n->name, strlen(n->name), ret_rule) == 0)
            return 0;
    }
    return 1;
}

/* A local client's call, judged once per policy, names held and
   destination: a client sends to the same few names over and over, and
   50 rules to walk for each of a million messages would be most of the
   cost of a send. */
static int s_local_allowed(deliver_t *self, client_t *c, int action, const char *name,
                           size_t len, const char **ret_why)
{
    if (!policy_has(self->policy, action))
        return 1;
    policy_cache_t *pc = &c->policy_cache;
    uint64_t gen = policy_gen(self->policy), dgen = directory_gen(self->dir);
    if (pc->gen != gen || pc->dgen != dgen || pc->action != action || pc->len != len ||
        memcmp(pc->name, name, len) != 0) {
        policy_who_t who = client_who(c);
        pc->rule = NULL;
        pc->allowed = s_verdict(self, &who, action, name, len, &pc->rule);
        pc->gen = gen;
        pc->dgen = dgen;
        pc->action = action;
        pc->len = len;
        memcpy(pc->name, name, len);
    }
    if (pc->allowed)
        return 1;
    policy_who_t who = client_who(c);
    policy_log_denial(&who, s_action_name(action), name, len, pc->rule);
    *ret_why = policy_denial(self->why, sizeof self->why, pc->rule);
    return 0;
}

/* May a client of peer (m's sender) do action with name? Asked again for
   each message of a stream, so the last answer is kept. */
static int s_remote_allowed(deliver_t *self, const peer_t *peer, const proto_msg_t *m,
                            int action, const char *name, size_t len, const char **ret_why)
{
    if (!policy_has(self->policy, action))
        return 1;
    typeof(self->remote_check) *rc = &self->remote_check;
    uint64_t gen = policy_gen(self->policy), dgen = directory_gen(self->dir);
    if (rc->gen != gen || rc->dgen != dgen || rc->peer != peer || rc->uid != m->uid ||
        rc->action != action || rc->len != len || memcmp(rc->name, name, len) != 0 ||
        strlen(rc->user) != m->userlen || memcmp(rc->user, m->user, m->userlen) != 0) {
        char user[WIRE_USER_MAX + 1], id[PROTO_ID_LEN + 1];
        snprintf(user, sizeof user, "%.*s", (int) m->userlen, m->user);
        proto_key_id(peer_key(peer), id);
        /* A node name is the node's whose key claimed it first: another
           node that says it is alpha is only its id to the rules. */
        policy_who_t who = { .local = 0, .uid = m->uid, .user = user,
                             .node = directory_owns_name(self->dir, peer) ? peer_name(peer) : "",
                             .node_id = id };
        rc->rule = NULL;
        rc->allowed = s_verdict(self, &who, action, name, len, &rc->rule);
        if (!rc->allowed)
            policy_log_denial(&who, s_action_name(action), name, len, rc->rule);
        rc->gen = gen;
        rc->dgen = dgen;
        rc->peer = peer;
        rc->uid = m->uid;
        rc->action = action;
        memcpy(rc->user, user, sizeof user);
        rc->len = len;
        memcpy(rc->name, name, len);
    }
    if (!rc->allowed)
        *ret_why = policy_denial(self->why, sizeof self->why, rc->rule);
    return rc->allowed;
}

/* May subscriber to be given a publication on topic? The answer for its
   last topic is kept. */
static int s_may_receive(deliver_t *self, client_t *to, const char *topic, size_t len)
{
    if (!policy_has(self->policy, POLICY_SUBSCRIBE))
        return 1;
    uint64_t gen = policy_gen(self->policy);
    if (to->sub_check.gen != gen || to->sub_check.len != len ||
        memcmp(to->sub_check.topic, topic, len) != 0) {
        policy_who_t who = client_who(to);
        to->sub_check.allowed =
            policy_check(self->policy, &who, POLICY_SUBSCRIBE, topic, len, NULL) != 0;
        to->sub_check.gen = gen;
        to->sub_check.len = len;
        memcpy(to->sub_check.topic, topic, len);
    }
    return to->sub_check.allowed;
}

/* Answers a REQUEST that could not be recorded. */
static void s_request_refused(client_t *c, const wire_frame_t *f, int err)
{
    client_send_error(c, f, -err, f->s1, f->s1len, request_strerror(err));
}

/* --- monitors ----------------------------------------------------------------------- */

/* May monitor m see a message to `to`, sent by a local client of uid
   (-1: a client of another node, whose uid is that node's claim) and
   queued for receiver (or NULL)? Root sees all; another user what its
   own clients send or receive, and what a rule lets it monitor. */
static int s_may_monitor(deliver_t *self, const client_t *m, const char *to, size_t tolen,
                         int64_t uid, const client_t *receiver)
{
    if (m->cred.uid == 0 || (uid >= 0 && (uint32_t) uid == m->cred.uid) ||
        (receiver && receiver->cred.uid == m->cred.uid))
        return 1;
    if (!policy_has(self->policy, POLICY_MONITOR))
        return 0;
    policy_who_t who = client_who(m);
    return policy_check(self->policy, &who, POLICY_MONITOR, to, tolen, NULL) == 1;
}

/* A note of one routed message for each monitor that may see it. A
   monitor never slows what it watches: past half its queue limit its
   notes are counted, and the count comes before its next note. */
static void s_monitor(deliver_t *self, int kind, const char *to, size_t tolen, const char *from,
                      size_t fromlen, const wire_from_t *sender, int64_t uid,
                      const client_t *receiver, const void *data, size_t size)
{
    const vec_t *mons = directory_monitors(self->dir);
    for (size_t i = 0; i < mons->size; i++) {
        client_t *m = mons->items[i];
        if (m->doomed || !wire_match(m->monitor, strlen(m->monitor), to, tolen) ||
            !s_may_monitor(self, m, to, tolen, uid, receiver))
            continue;
        if (m->queued > self->cfg->queue_limit / 2) {
            m->monitor_lost++;
            continue;
        }
        uint8_t head[WIRE_HEAD_MAX], body[4 + WIRE_MON_BYTES];
        size_t hlen;
        if (m->monitor_lost) {
            wire_from_t node = { .uid = 0, .user = "", .userlen = 0,
                                 .node_id = directory_id(self->dir) };
            wire_put32(body, m->monitor_lost);
            hlen = wire_encode_from(head, WIRE_MONITORED, 0, 0, WIRE_MON_LOST, NULL, 0, NULL, 0,
                                    &node, 4);
            client_queue_frame(m, head, hlen, NULL, body, 4, NULL);
            m->monitor_lost = 0;
        }
        size_t shown = size < WIRE_MON_BYTES ? size : WIRE_MON_BYTES;
        wire_put32(body, size > UINT32_MAX ? UINT32_MAX : (uint32_t) size);
        if (shown)
            memcpy(body + 4, data, shown);
        hlen = wire_encode_from(head, WIRE_MONITORED, 0, 0, (uint32_t) kind, to, tolen, from,
                                fromlen, sender, 4 + shown);
        client_queue_frame(m, head, hlen, NULL, body, 4 + shown, NULL);
    }
}

#define MONITORED(self) (directory_monitors((self)->dir)->size > 0)

/* --- from local clients ------------------------------------------------------------ */

int deliver_send(deliver_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    if (f->size > self->cfg->max_message) {
        client_send_error(c, f, EMSGSIZE, f->s1, f->s1len, "message too large");
        return CLIENT_DONE;
    }
    int request = f->type == WIRE_REQUEST;
    const char *why;
    int action = request ? POLICY_REQUEST : POLICY_SEND;
    if (policy_has(self->policy, action) &&
        !s_local_allowed(self, c, action, f->s1, s_policy_name(f->s1, f->s1len), &why)) {
        client_send_error(c, f, EACCES, f->s1, f->s1len, why);
        return CLIENT_DONE;
    }
    target_t t;
    size_t alen = c->addrlen;
    size_t len = WIRE_MIN + WIRE_FROM_MAX + alen + f->s1len + f->size;
    if (!c->route)
        c->route = route_new();     /* without one, routed every time */
    int rc = route_find(self->dir, c->route, f->s1, f->s1len, len, ROUTE_ANY, &t);
    if (rc < 0) {
        client_send_error(c, f, -rc, f->s1, f->s1len,
                          rc == -ENOENT ? "no such name" :
                          rc == -EHOSTUNREACH ? "no such node" : "bad destination");
        return CLIENT_DONE;
    }
    uint32_t timeout = requests_timeout(self->requests, f->aux);
    if (t.peer) {
        if (!peer_room(t.peer, f->size))
            return client_block_on_peer(c, t.peer);
        request_t *r = NULL;
        if (request && (rc = request_new(self->requests, c, c->id, f->seq, NULL, 0, "", 0,
                                         NULL, t.peer, timeout, &r)) < 0) {
            s_request_refused(c, f, rc);
            return CLIENT_DONE;
        }
        if (r)
            request_set_name(r, f->s1, s_policy_name(f->s1, f->s1len));
        proto_msg_t m = {
            .type = P_MSG, .flags = f->flags & WIRE_F_CONFIRM ? P_F_CONFIRM : 0,
            .kind = request ? P_KIND_REQUEST : P_KIND_SEND, .cseq = f->seq, .timeout = timeout,
            .from = c->address, .fromlen = alen, .uid = c->cred.uid, .user = c->user,
            .userlen = c->userlen, .to = f->s1, .tolen = f->s1len,
            .data = f->data, .size = f->size,
        };
        rc = peer_send_data(t.peer, &m, c->id, f->seq, request ? WIRE_REQUEST : WIRE_SEND);
        if (rc < 0) {
            /* Not sent, so not in flight: this is its one answer. */
            if (r)
                request_free(r);
            client_send_error(c, f, -rc, f->s1, f->s1len, "cannot reach the node");
        } else if (MONITORED(self)) {
            wire_from_t from = s_from_client(self, c);
            s_monitor(self, request ? WIRE_MON_REQUEST : WIRE_MON_SEND, f->s1, f->s1len,
                      c->address, alen, &from, c->cred.uid, NULL, f->data, f->size);
        }
        return CLIENT_DONE;     /* the peer's ACK or FAIL answers a CONFIRM */
    }
    client_t *to = t.to;
    if (!client_has_room(to, len))
        return client_block_on(c, to);

    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen;
    wire_from_t from = s_from_client(self, c);
    if (request) {
        request_t *r;
        if ((rc = request_new(self->requests, c, c->id, f->seq, NULL, 0, "", 0, to, NULL,
                              timeout, &r)) < 0) {
            s_request_refused(c, f, rc);
            return CLIENT_DONE;
        }
        request_set_name(r, f->s1, s_policy_name(f->s1, f->s1len));
        hlen = wire_encode_from(head, WIRE_DELIVER_REQ, 0, f->seq, timeout, c->address, alen,
                                f->s1, f->s1len, &from, f->size);
    } else {
        /* The head differs from the last one to this place only in size
           and seq: patch a copy rather than encode it again. */
        route_t *rt = c->route;
        if (rt && !rt->hlen)
            rt->hlen = wire_encode_from(rt->head, WIRE_MESSAGE, 0, 0, 0, c->address, alen,
                                        f->s1, f->s1len, &from, 0);
        if (rt) {
            hlen = rt->hlen;
            memcpy(head, rt->head, hlen);
            wire_put32(head, (uint32_t) (hlen - 4 + f->size));
            wire_put32(head + 8, f->seq);
        } else
            hlen = wire_encode_from(head, WIRE_MESSAGE, 0, f->seq, 0, c->address, alen,
                                    f->s1, f->s1len, &from, f->size);
    }
    client_queue_frame(to, head, hlen, pbuf, f->data, f->size, NULL);
    self->stats->delivered++;
    if (MONITORED(self))
        s_monitor(self, request ? WIRE_MON_REQUEST : WIRE_MON_SEND, f->s1, f->s1len, c->address,
                  alen, &from, c->cred.uid, to, f->data, f->size);
    /* CONFIRM: answered once written to the receiver's socket. */
    if ((f->flags & WIRE_F_CONFIRM) &&
        client_confirm(to, c->id, NULL, f->seq, NULL, 0, f->s1, f->s1len) < 0)
        client_send_ok(c, f, NULL, 0);      /* no memory to wait: queued, as before */
    return CLIENT_DONE;
}

int deliver_reply(deliver_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    request_t *r = requests_find(self->requests, f->s1, f->s1len, f->aux,
                                 directory_self(self->dir));
    if (!r || r->holder != c) {
        client_send_error(c, f, ENOENT, f->s1, f->s1len, "no such pending request");
        return CLIENT_DONE;
    }
    if (f->size > self->cfg->max_message) {
        request_fail(r, EMSGSIZE, "reply too large");
        client_send_error(c, f, EMSGSIZE, f->s1, f->s1len, "reply too large");
        return CLIENT_DONE;
    }
    const char *why;
    if (r->name && !s_local_allowed(self, c, POLICY_REPLY, r->name, strlen(r->name), &why)) {
        client_send_error(c, f, EACCES, f->s1, f->s1len, why);
        request_fail(r, EACCES, why);
        return CLIENT_DONE;
    }
    size_t alen = c->addrlen;
    if (!r->requester) {
        /* The requester is on another node. */
        if (!peer_room(r->peer, f->size))
            return client_block_on_peer(c, r->peer);
        proto_msg_t m = {
            .type = P_REPLY, .cseq = r->id, .to = r->from, .tolen = strlen(r->from),
            .from = c->address, .fromlen = alen, .uid = c->cred.uid, .user = c->user,
            .userlen = c->userlen, .data = f->data, .size = f->size,
        };
        if (peer_send_data(r->peer, &m, c->id, 0, WIRE_REPLY) < 0)
            client_send_error(c, f, EHOSTUNREACH, f->s1, f->s1len, "the requester's node is gone");
        else if (MONITORED(self)) {
            wire_from_t from = s_from_client(self, c);
            s_monitor(self, WIRE_MON_REPLY, r->from, strlen(r->from), c->address, alen, &from,
                      c->cred.uid, NULL, f->data, f->size);
        }
        request_free(r);
        return CLIENT_DONE;
    }
    client_t *to = r->requester;
    size_t len = WIRE_MIN + WIRE_FROM_MAX + alen + f->size;
    if (!client_has_room(to, len))
        return client_block_on(c, to);
    uint8_t head[WIRE_HEAD_MAX];
    wire_from_t from = s_from_client(self, c);
    size_t hlen = wire_encode_from(head, WIRE_DELIVER_REP, 0, r->id, 0, c->address, alen,
                                   NULL, 0, &from, f->size);
    client_queue_frame(to, head, hlen, pbuf, f->data, f->size, NULL);
    self->stats->delivered++;
    if (MONITORED(self))
        s_monitor(self, WIRE_MON_REPLY, to->address, strlen(to->address), c->address, alen,
                  &from, c->cred.uid, to, f->data, f->size);
    request_free(r);
    return CLIENT_DONE;
}

/* Delivers a publication to every local subscriber, all or none: a full
   subscriber is returned in *ret_blocked and nobody gets it yet. */
static int s_publish_local(deliver_t *self, const char *topic, size_t tlen, const char *from,
                           size_t fromlen, const wire_from_t *sender, uint32_t seq, buf_t *pbuf,
                           const void *data, size_t size, const client_origin_t *origin,
                           client_t **ret_blocked)
{
    size_t len = WIRE_MIN + WIRE_FROM_MAX + fromlen + tlen + size;
    sub_t *exact = directory_exact_sub(self->dir, topic, tlen);
    const vec_t *prefix = directory_prefix_subs(self->dir);
    for (int pass = 0; pass < 2; pass++) {
        uint8_t head[WIRE_HEAD_MAX];
        size_t hlen = wire_encode_from(head, WIRE_PUBLICATION, 0, seq, 0, topic, tlen,
                                       from, fromlen, sender, size);
        uint32_t epoch = ++self->pub_epoch;
        for (size_t i = 0; i <= prefix->size; i++) {
            sub_t *sub = i < prefix->size ? prefix->items[i] : exact;
            if (!sub || (sub->prefix && !wire_match(sub->pattern, strlen(sub->pattern),
                                                    topic, tlen)))
                continue;
            for (size_t j = 0; j < sub->clients.size; j++) {
                client_t *to = sub->clients.items[j];
                if (to->pub_epoch == epoch || to->doomed)
                    continue;
                to->pub_epoch = epoch;
                if (!s_may_receive(self, to, topic, tlen))
                    continue;       /* not for its eyes: nothing else happens */
                if (pass == 0 && !client_has_room(to, len)) {
                    *ret_blocked = to;
                    return CLIENT_BLOCKED;
                }
                if (pass == 1) {
                    client_queue_frame(to, head, hlen, pbuf, data, size, origin);
                    self->stats->delivered++;
                }
            }
        }
    }
    return CLIENT_DONE;
}

int deliver_publish(deliver_t *self, client_t *c, const wire_frame_t *f, buf_t *pbuf)
{
    if (wire_check_name(f->s1, f->s1len) < 0) {
        client_send_error(c, f, EINVAL, f->s1, f->s1len, "bad topic");
        return CLIENT_DONE;
    }
    if (f->size > self->cfg->max_message) {
        client_send_error(c, f, EMSGSIZE, f->s1, f->s1len, "message too large");
        return CLIENT_DONE;
    }
    const char *why;
    if (!s_local_allowed(self, c, POLICY_PUBLISH, f->s1, f->s1len, &why)) {
        client_send_error(c, f, EACCES, f->s1, f->s1len, why);
        return CLIENT_DONE;
    }
    /* Everyone must have room before anyone gets it: a publish is never
       half delivered, and a full subscriber pauses the publisher. */
    size_t npeers = directory_remote_subscribers(self->dir, f->s1, f->s1len, &self->peers);
    for (size_t i = 0; i < npeers; i++)
        if (!peer_room(self->peers.items[i], f->size))
            return client_block_on_peer(c, self->peers.items[i]);
    client_t *full = NULL;
    size_t alen = c->addrlen;
    wire_from_t from = s_from_client(self, c);
    if (s_publish_local(self, f->s1, f->s1len, c->address, alen, &from, f->seq, pbuf, f->data,
                        f->size, NULL, &full) == CLIENT_BLOCKED)
        return client_block_on(c, full);
    proto_msg_t m = {
        .type = P_PUB, .cseq = f->seq, .to = f->s1, .tolen = f->s1len,
        .from = c->address, .fromlen = alen, .uid = c->cred.uid, .user = c->user,
        .userlen = c->userlen, .data = f->data, .size = f->size,
    };
    for (size_t i = 0; i < npeers; i++) {
        int rc = peer_send_data(self->peers.items[i], &m, c->id, f->seq, WIRE_PUBLISH);
        if (rc < 0)     /* not sent, so not in flight: said here */
            deliver_fail_origin(self, c->id, f->seq, WIRE_PUBLISH, -rc);
    }
    if (MONITORED(self))
        s_monitor(self, WIRE_MON_PUBLISH, f->s1, f->s1len, c->address, alen, &from, c->cred.uid,
                  NULL, f->data, f->size);
    if (f->flags & WIRE_F_CONFIRM)
        client_send_ok(c, f, NULL, 0);
    return CLIENT_DONE;
}

/* --- from peers ----------------------------------------------------------------------- */

/* A large payload from a peer is queued by reference to its ZeroMQ
   message, not copied; NULL for a small one (copied) or out of memory.
   One at or above --shm-threshold is written once into a sealed memfd
   that every local receiver taking memfds gets (shm.h). */
static buf_t *s_peer_payload(deliver_t *self, zmq_msg_t *zmsg, const void *data, size_t size)
{
    buf_t *b = NULL;
    if (self->cfg->shm_threshold && size >= self->cfg->shm_threshold && size > 0)
        b = shm_of_bytes(data, size);
    self->stats->shm_made += b != NULL;
    return b ? b : size >= CLIENT_BY_REF && zmsg ? buf_of_zmq(zmsg) : NULL;
}

static int s_remote_msg(deliver_t *self, peer_t *peer, const proto_msg_t *m, zmq_msg_t *zmsg,
                        const client_origin_t *origin, client_t **ret_blocked)
{
    uint8_t what = m->kind == P_KIND_REQUEST ? WIRE_REQUEST : WIRE_SEND;
    if (m->size > self->cfg->max_message) {
        peer_send_fail(peer, EMSGSIZE, m->cseq, what, m->from, m->fromlen, m->to, m->tolen,
                       "message too large");
        return CLIENT_DONE;
    }
    const char *why;
    if (!s_remote_allowed(self, peer, m, m->kind == P_KIND_REQUEST ? POLICY_REQUEST : POLICY_SEND,
                          m->to, s_policy_name(m->to, m->tolen), &why)) {
        self->stats->errors++;
        peer_send_fail(peer, EACCES, m->cseq, what, m->from, m->fromlen, m->to, m->tolen, why);
        return CLIENT_DONE;
    }
    /* Only for us: a name or address pinned to another node is not
       forwarded again. */
    target_t t;
    size_t len = WIRE_MIN + WIRE_FROM_MAX + m->fromlen + m->tolen + m->size;
    int rc = route_find(self->dir, &self->peer_route, m->to, m->tolen, len, ROUTE_HERE, &t);
    if (rc < 0) {
        self->stats->errors++;
        peer_send_fail(peer, -rc, m->cseq, what, m->from, m->fromlen, m->to, m->tolen,
                       rc == -ENOENT ? "no such name" : "not for this node");
        return CLIENT_DONE;
    }
    if (!client_has_room(t.to, len)) {
        *ret_blocked = t.to;
        return CLIENT_BLOCKED;
    }
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen;
    wire_from_t from = s_from_peer(peer, m);
    if (m->kind == P_KIND_REQUEST) {
        uint64_t rclient;
        size_t rnamelen, rnodelen;
        const char *rnode;
        uint32_t timeout = requests_timeout(self->requests, m->timeout);
        request_t *r;
        if (wire_parse_dest(m->from, m->fromlen, &rclient, &rnamelen, &rnode, &rnodelen) < 0 ||
            !rclient || directory_is_self(self->dir, rnode, rnodelen)) {
            peer_send_fail(peer, EINVAL, m->cseq, what, m->from, m->fromlen, m->to, m->tolen,
                           "bad requester address");
            return CLIENT_DONE;
        }
        rc = request_new(self->requests, NULL, rclient, m->cseq, m->from, m->fromlen, rnode,
                         rnodelen, t.to, peer, timeout + 1000, &r);
        if (rc < 0) {
            /* EINVAL for an id in use, as the spec has always said. */
            peer_send_fail(peer, rc == -EEXIST ? EINVAL : -rc, m->cseq, what, m->from,
                           m->fromlen, m->to, m->tolen,
                           rc == -EEXIST ? "request id in use" : request_strerror(rc));
            return CLIENT_DONE;
        }
        request_set_name(r, m->to, s_policy_name(m->to, m->tolen));
        hlen = wire_encode_from(head, WIRE_DELIVER_REQ, 0, m->cseq, timeout, m->from,
                                m->fromlen, m->to, m->tolen, &from, m->size);
    } else
        hlen = wire_encode_from(head, WIRE_MESSAGE, 0, m->cseq, 0, m->from, m->fromlen,
                                m->to, m->tolen, &from, m->size);
    buf_t *pbuf = s_peer_payload(self, zmsg, m->data, m->size);
    client_queue_frame(t.to, head, hlen, pbuf, m->data, m->size, origin);
    buf_unref(&pbuf);
    self->stats->delivered++;
    if (MONITORED(self))
        s_monitor(self, m->kind == P_KIND_REQUEST ? WIRE_MON_REQUEST : WIRE_MON_SEND, m->to,
                  m->tolen, m->from, m->fromlen, &from, -1, t.to, m->data, m->size);
    /* CONFIRM: acknowledged once written to the receiver's socket. */
    if ((m->flags & P_F_CONFIRM) &&
        client_confirm(t.to, 0, peer, m->cseq, m->from, m->fromlen, m->to, m->tolen) < 0)
        peer_send_ack(peer, m->cseq, m->from, m->fromlen);
    return CLIENT_DONE;
}

/* REPLY: to a local requester, for a request forwarded to that peer. */
static int s_remote_reply(deliver_t *self, peer_t *peer, const proto_msg_t *m, zmq_msg_t *zmsg,
                          const client_origin_t *origin, client_t **ret_blocked)
{
    request_t *r = requests_find(self->requests, m->to, m->tolen, m->cseq,
                                 directory_self(self->dir));
    if (!r || !r->requester || r->peer != peer)
        return CLIENT_DONE;     /* timed out meanwhile: the requester was told */
    if (m->size > self->cfg->max_message) {
        request_fail(r, EMSGSIZE, "reply too large for this node");
        return CLIENT_DONE;
    }
    const char *why;
    if (r->name && !s_remote_allowed(self, peer, m, POLICY_REPLY, r->name, strlen(r->name), &why)) {
        request_fail(r, EACCES, why);
        return CLIENT_DONE;
    }
    client_t *to = r->requester;
    size_t len = WIRE_MIN + WIRE_FROM_MAX + m->fromlen + m->size;
    if (!client_has_room(to, len)) {
        *ret_blocked = to;
        return CLIENT_BLOCKED;
    }
    uint8_t head[WIRE_HEAD_MAX];
    wire_from_t from = s_from_peer(peer, m);
    size_t hlen = wire_encode_from(head, WIRE_DELIVER_REP, 0, r->id, 0, m->from, m->fromlen,
                                   NULL, 0, &from, m->size);
    buf_t *pbuf = s_peer_payload(self, zmsg, m->data, m->size);
    client_queue_frame(to, head, hlen, pbuf, m->data, m->size, origin);
    buf_unref(&pbuf);
    self->stats->delivered++;
    if (MONITORED(self))
        s_monitor(self, WIRE_MON_REPLY, to->address, strlen(to->address), m->from, m->fromlen,
                  &from, -1, to, m->data, m->size);
    request_free(r);
    return CLIENT_DONE;
}

int deliver_from_peer(deliver_t *self, peer_t *peer, const proto_msg_t *m, zmq_msg_t *zmsg)
{
    client_origin_t origin = { peer, peer_epoch(peer), m->seq };
    client_t *blocked = NULL;
    const char *why;
    int rc = CLIENT_DONE;
    if (m->type == P_MSG)
        rc = s_remote_msg(self, peer, m, zmsg, &origin, &blocked);
    else if (m->type == P_REPLY)
        rc = s_remote_reply(self, peer, m, zmsg, &origin, &blocked);
    else if (m->size > self->cfg->max_message)
        peer_send_fail(peer, EMSGSIZE, m->cseq, WIRE_PUBLISH, m->from, m->fromlen, m->to,
                       m->tolen, "message too large for this node");
    else if (!s_remote_allowed(self, peer, m, POLICY_PUBLISH, m->to, m->tolen, &why))
        peer_send_fail(peer, EACCES, m->cseq, WIRE_PUBLISH, m->from, m->fromlen, m->to,
                       m->tolen, why);
    else {
        buf_t *pbuf = s_peer_payload(self, zmsg, m->data, m->size);
        wire_from_t from = s_from_peer(peer, m);
        rc = s_publish_local(self, m->to, m->tolen, m->from, m->fromlen, &from, m->cseq, pbuf,
                             m->data, m->size, &origin, &blocked);
        buf_unref(&pbuf);
        if (rc != CLIENT_BLOCKED && MONITORED(self))
            s_monitor(self, WIRE_MON_PUBLISH, m->to, m->tolen, m->from, m->fromlen, &from, -1,
                      NULL, m->data, m->size);
    }
    if (rc == CLIENT_BLOCKED) {
        self->stats->paused++;
        if (client_park_peer(blocked, peer) < 0)
            return CLIENT_DONE;     /* cannot wait for it: lost, sadly */
    }
    return rc;
}

/* A local client by its address, if the address is of this node. */
static client_t *s_local_client(deliver_t *self, const char *addr, size_t len)
{
    uint64_t id;
    size_t namelen, nodelen;
    const char *node;
    if (wire_parse_dest(addr, len, &id, &namelen, &node, &nodelen) < 0 || !id ||
        !directory_is_self(self->dir, node, nodelen))
        return NULL;
    return directory_client(self->dir, id);
}

void deliver_peer_ack(deliver_t *self, peer_t *peer, const proto_msg_t *m)
{
    client_t *c = s_local_client(self, m->to, m->tolen);
    if (c) {
        peer_settled(peer, c->id, m->cseq);
        client_send_control(c, WIRE_OK, 0, m->cseq, 0, NULL, 0, NULL, 0, NULL, 0);
    }
}

void deliver_peer_fail(deliver_t *self, peer_t *peer, const proto_msg_t *m)
{
    char text[WIRE_NAME_MAX + 1];
    snprintf(text, sizeof text, "%.*s", (int) m->textlen, m->text);
    if (m->kind == WIRE_REQUEST) {
        request_t *r = requests_find(self->requests, m->to, m->tolen, m->cseq,
                                     directory_self(self->dir));
        if (r && r->requester && r->peer == peer)
            request_fail(r, (int) m->error, text);
        return;
    }
    client_t *c = s_local_client(self, m->to, m->tolen);
    if (c) {
        self->stats->errors++;
        peer_settled(peer, c->id, m->cseq);
        client_send_control(c, WIRE_ERROR, m->kind, m->cseq, m->error, m->name, m->namelen,
                            text, strlen(text), NULL, 0);
    }
}

void deliver_fail_origin(deliver_t *self, uint64_t client, uint32_t cseq, uint8_t what, int err)
{
    client_t *c = directory_client(self->dir, client);
    if (!c || cseq == 0)
        return;
    if (what == WIRE_REQUEST) {
        request_t *r = requests_find_local(self->requests, client, cseq);
        if (r)
            request_fail(r, err, "the node holding it was lost");
        return;
    }
    self->stats->errors++;
    const char *text = "the node it went to was lost before taking it";
    client_send_control(c, WIRE_ERROR, what, cseq, (uint32_t) err, NULL, 0, text, strlen(text),
                        NULL, 0);
}
