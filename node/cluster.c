/*  cluster.c: membership: what peers say on our ROUTER and DEALERs, the
    handshake, gossip, the tick (heartbeats, losses, redials, key
    questions), mDNS, and reaping the links that failed. How many peers
    there is room for is room.c's.

    Sockets. One ROUTER takes every peer's messages; each peer's DEALER
    carries ours to its ROUTER, with our id as routing id. A DEALER knows
    whom it reached from the HELLO_ACK its HELLO gets; the ROUTER knows
    who speaks from the routing id, which ZAP ties to the key that
    connection authenticated with (keys.c). A peer is up once both
    directions have shaken hands (peer.h has the states).

    ZeroMQ's file descriptors signal edges, not levels: after every send
    the socket may hold input that no wake-up will announce, so the idle
    step reads the sockets sent on before the loop sleeps.

    Reaping. A link that fails marks itself lost wherever that happens;
    the cluster reaps it here, in its own handlers or in the idle pass,
    never under a caller's stack: its names vanish, what it had not
    acknowledged fails back to its senders, requests waiting on it fail,
    clients waiting for room on it go on, and it is dialled again. */

#include "cluster.h"
#include "candidates.h"
#include "keys.h"
#include "log.h"
#include "mdns.h"
#include "member.h"
#include "peer.h"
#include "store.h"

#include <czmq.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void s_dealer_ready(loop_t *loop, int fd, int revents, void *arg);
static void s_key_answer(loop_t *loop, int fd, int revents, void *arg);

/* --- members ------------------------------------------------------------------------ */

static member_t *s_by_endpoint(cluster_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->members.size; i++)
        if (strcmp(peer_endpoint(cluster_member(self, i)->peer), endpoint) == 0)
            return cluster_member(self, i);
    return NULL;
}

static int s_is_self_endpoint(cluster_t *self, const char *endpoint)
{
    for (size_t i = 0; i < self->nself; i++)
        if (strcmp(self->self_endpoints[i], endpoint) == 0)
            return 1;
    return 0;
}

static void s_self_endpoint(cluster_t *self, const char *endpoint)
{
    if (!s_is_self_endpoint(self, endpoint) && self->nself < SELF_MAX)
        snprintf(self->self_endpoints[self->nself++], ENDPOINT_MAX, "%s", endpoint);
}

/* A new DEALER to the member, and our HELLO. Returns 0 or -errno. */
static int s_dial(member_t *m)
{
    m->dialled = loop_now(m->cluster->loop);
    int rc = peer_dial(m->peer, m->is_static || m->verified, s_dealer_ready, m);
    if (rc < 0)
        log_warning("cannot connect to %s: %s", peer_endpoint(m->peer), zmq_strerror(-rc));
    return rc;
}

static void s_member_free(member_t *m)
{
    cluster_t *self = m->cluster;
    if (self->last_member == m)
        self->last_member = NULL;
    directory_peer_release(self->dir, m->peer);
    vec_remove(&self->members, m);
    keyask_stop(&m->ask, self->loop);
    peer_destroy(&m->peer);
    free(m);
}

/* A new peer to dial at endpoint, with its key; a static peer may come
   without one, and is then asked for it. Returns NULL for ourselves, a
   key not authorized, or out of memory. */
static member_t *s_member_new(cluster_t *self, const char *endpoint, int is_static,
                              const uint8_t *key)
{
    if (key && memcmp(key, keys_key(self->keys), PROTO_KEY_LEN) == 0) {
        s_self_endpoint(self, endpoint);
        return NULL;
    }
    if (key && !keys_allowed(self->keys, key)) {
        keys_refused_log(self->keys, key, endpoint);
        return NULL;
    }
    member_t *m = calloc(1, sizeof *m);
    if (!m || !(m->peer = peer_new(&self->env, endpoint)) || vec_push(&self->members, m) < 0) {
        if (m)
            peer_destroy(&m->peer);
        free(m);
        return NULL;
    }
    m->cluster = self;
    m->is_static = is_static;
    m->known_at = loop_now(self->loop);
    m->key_from = !key ? NULL : is_static ? "given with --peer" : "from where we heard of it";
    keyask_init(&m->ask);
    m->last_refused_log = m->last_redial_log = m->last_key_log = INT64_MIN / 2;
    if (key)
        peer_set_key(m->peer, key);
    if ((key ? s_dial(m) : keyask_start(&m->ask, self->loop, endpoint, 0, s_key_answer, m)) < 0) {
        s_member_free(m);
        return NULL;
    }
    return m;
}

/* A node heard of (gossip, mDNS), with the key its id is of: kept to be
   dialled as room and rate allow (candidates.c), at the next tick. */
static void s_candidate(cluster_t *self, const char *endpoint, const uint8_t *key, int by_mdns)
{
    char id[PROTO_ID_LEN + 1];
    proto_key_id(key, id);
    if (!candidates_failed(self->candidates, id, loop_now(self->loop)))
        candidates_add(self->candidates, endpoint, key, by_mdns);
}

/* The tick: candidates waiting are dialled as room and rate allow. */
static void s_dial_candidates(cluster_t *self)
{
    int64_t now = loop_now(self->loop);
    candidates_tell(self->candidates, now);
    while (candidates_waiting(self->candidates) > 0 && cluster_room(self, "a node heard of", 1) &&
           candidates_token(self->candidates, now)) {
        candidate_t k;
        if (!candidates_next(self->candidates, cluster_host_busy, self, &k))
            break;
        char id[PROTO_ID_LEN + 1];
        proto_key_id(k.key, id);
        member_t *known = cluster_by_id(self, id, PROTO_ID_LEN);
        if (known) {
            known->by_mdns |= k.by_mdns;    /* met meanwhile: known these ways too */
            known->found |= k.by_gossip ? FOUND_GOSSIP : 0;
        }
        if (known || s_by_endpoint(self, k.endpoint) ||
            s_is_self_endpoint(self, k.endpoint) || candidates_failed(self->candidates, id, now))
            continue;
        member_t *m = s_member_new(self, k.endpoint, 0, k.key);
        if (m) {
            m->by_mdns = k.by_mdns;
            m->found |= k.by_gossip ? FOUND_GOSSIP : 0;
            m->key_from = k.by_mdns ? "its mDNS record" : "a peer's gossip";
        }
    }
}

/* --- up and lost ---------------------------------------------------------------------- */

/* Tells to one peer every other up peer (or, with only, just that one). */
static void s_gossip(cluster_t *self, member_t *to, member_t *only)
{
    proto_list_begin(&self->out, P_PEERS);
    for (size_t i = 0; i < self->members.size && proto_list_count(&self->out) < PROTO_LIST_MAX; i++) {
        peer_t *p = cluster_member(self, i)->peer;
        if (p == to->peer || !peer_is_up(p) || !peer_key(p) || (only && p != only->peer))
            continue;
        proto_list_add_peer(&self->out, peer_id(p), peer_name(p), peer_endpoint(p), peer_key(p));
    }
    if (proto_list_count(&self->out) > 0)
        peer_send_encoded(to->peer, &self->out);
}

/* The member has come up: it learns our names and patterns, and whom we
   know; everyone we know learns of it. */
static void s_came_up(cluster_t *self, member_t *m)
{
    peer_t *p = m->peer;
    m->verified = 1;
    m->attempts = 0;
    m->why[0] = 0;
    m->up_at = loop_now(self->loop);
    char how[64];
    log_notice("peer %s (%.8s) up at %s (%s)", peer_name(p), peer_id(p), peer_endpoint(p),
               member_source(m, how, sizeof how));
    directory_peer_state(self->dir, p, 1);
    if (self->store)
        store_peer_up(self->store, p);
    s_gossip(self, m, NULL);
    for (size_t i = 0; i < self->members.size; i++)
        if (cluster_member(self, i) != m && peer_is_up(cluster_member(self, i)->peer))
            s_gossip(self, cluster_member(self, i), m);
}

/* A handshake event's outcome: up, or not yet. */
static void s_handshake(cluster_t *self, member_t *m, int was_up)
{
    if (!was_up && peer_is_up(m->peer))
        s_came_up(self, m);
}

/* Reaps a lost link: its names vanish, whatever it did not acknowledge
   fails back to its sender, watchers hear it went, requests waiting on it
   fail, clients waiting for room on it go on. */
static void s_reap_one(cluster_t *self, member_t *m)
{
    peer_t *p = m->peer;
    int was_up = peer_lost_from(p) == PEER_UP;
    if (was_up) {
        log_notice("peer %s (%.8s) at %s lost: %s", peer_name(p), peer_id(p), peer_endpoint(p),
                   peer_lost_why(p));
        m->down_since = loop_now(self->loop);
    }
    directory_peer_forget(self->dir, p);
    ring_t flights;
    vec_t waiters;
    peer_reset(p, &flights, &waiters);
    while (flights.count > 0) {
        peer_flight_t f = RING_AT(&flights, peer_flight_t, 0);
        ring_pop(&flights);
        if (f.origin)
            deliver_fail_origin(self->deliver, f.origin, f.cseq, f.what, EHOSTUNREACH);
    }
    ring_free(&flights);
    if (was_up)
        directory_peer_state(self->dir, p, 0);
    if (self->store)
        store_peer_down(self->store, p);
    requests_peer_lost(self->requests, p);
    for (size_t i = 0; i < waiters.size; i++)
        client_wake(waiters.items[i]);
    vec_free(&waiters);
    m->reaped = 1;
}

/* Dials a reaped member again; one that cannot be dialled now is tried
   again by the tick. */
static void s_redial(member_t *m)
{
    if (s_dial(m) == 0)
        m->reaped = 0;
}

/* Marks the member lost and reaps it at once, from the cluster's own
   handlers (a peer that has no link yet has nothing to lose). */
static void s_lost(cluster_t *self, member_t *m, const char *why)
{
    if (peer_state(m->peer) == PEER_ASKING_KEY)
        return;
    if (peer_is_up(m->peer))
        member_why(m, "lost: %s", why);
    peer_lose(m->peer, why);
    if (!m->reaped)
        s_reap_one(self, m);
}

/* Lost, then dialled anew. */
static void s_restart(cluster_t *self, member_t *m, const char *why)
{
    s_lost(self, m, why);
    if (m->reaped)
        s_redial(m);
}

/* Drops a peer for good. */
static void s_forget(cluster_t *self, member_t *m, const char *why)
{
    s_lost(self, m, why);
    member_forgotten(self, m, why);
    s_member_free(m);
}

void cluster_reap(cluster_t *self)
{
    for (size_t i = 0; i < self->members.size; i++) {
        member_t *m = cluster_member(self, i);
        if (peer_state(m->peer) == PEER_LOST && !m->reaped) {
            s_reap_one(self, m);
            s_redial(m);
        }
    }
}

/* --- keys ---------------------------------------------------------------------------- */

/* The member, dialled by endpoint without a key, has one now: from a KEY
   answer, an mDNS record or a connection from its address, none of which
   proves that the key is the endpoint's: trusted on first use, and
   checked against known-peers. Returns 0 (it may still have no key:
   refused), or -1 if the member was freed. */
static int s_key_learned(cluster_t *self, member_t *m, const uint8_t *key)
{
    peer_t *p = m->peer;
    keyask_stop(&m->ask, self->loop);
    m->ask.tries = 0;
    if (memcmp(key, keys_key(self->keys), PROTO_KEY_LEN) == 0) {
        s_self_endpoint(self, peer_endpoint(p));
        s_forget(self, m, "it is ourselves");
        return -1;
    }
    if (!keys_allowed(self->keys, key)) {
        keys_refused_log(self->keys, key, peer_endpoint(p));
        m->ask.asked = loop_now(self->loop) + REDIAL_MS;      /* asked again later */
        return 0;
    }
    char id[PROTO_ID_LEN + 1];
    proto_key_id(key, id);
    member_t *other = cluster_by_id(self, id, PROTO_ID_LEN);
    if (other && other != m) {
        /* Known already, by another way: one peer. */
        other->is_static |= m->is_static;
        s_forget(self, m, "known already");
        return -1;
    }
    int same = peer_key(p) && memcmp(peer_key(p), key, PROTO_KEY_LEN) == 0;
    char why[sizeof m->why];
    if (!same && keys_known(self->keys, peer_endpoint(p), key, &m->last_key_log, why,
                            sizeof why) < 0) {
        member_why(m, "%s", why);
        m->ask.asked = loop_now(self->loop) + REDIAL_MS;      /* asked again later */
        return 0;
    }
    peer_set_key(p, key);
    m->key_tofu = 1;
    m->key_from = "its answer to a KEY question, kept in known-peers";
    if (s_dial(m) < 0) {
        s_forget(self, m, "cannot connect");
        return -1;
    }
    return 0;
}

static void s_key_answer(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    member_t *m = arg;
    uint8_t key[PROTO_KEY_LEN];
    if (keyask_read(&m->ask, key))
        s_key_learned(m->cluster, m, key);     /* m may be gone */
}

/* --- the ROUTER ------------------------------------------------------------------------ */

/* Answers on the ROUTER, to the DEALER that spoke (HELLO_ACK, PONG, FAIL). */
static void s_answer(cluster_t *self, const proto_msg_t *m, const void *rid, size_t ridlen)
{
    void *router = self->router;
    proto_encode(&self->out, m);
    self->router_touched = 1;
    if (self->out.failed ||
        zmq_send(router, rid, ridlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
        zmq_send(router, self->out.data, self->out.len, ZMQ_DONTWAIT) < 0) {
        /* A peer that went away as we answered: it says HELLO again. */
    }
}

/* A heartbeat to peer, on our ROUTER: the direction that carries only
   answers, so it never waits behind data (protocol section 6.11). */
static void s_ping(cluster_t *self, peer_t *p)
{
    proto_msg_t ping = { .type = P_PING, .stamp = (uint64_t) peer_now_us() };
    s_answer(self, &ping, peer_id(p), PROTO_ID_LEN);
}

/* Refuses a HELLO: a FAIL with an empty "to", on the dialler's connection. */
static void s_refuse(cluster_t *self, const void *rid, size_t ridlen, int err, const char *text)
{
    proto_msg_t m = { .type = P_FAIL, .error = (uint32_t) err, .text = text,
                      .textlen = strlen(text) };
    s_answer(self, &m, rid, ridlen);
}

static void s_hello_ack(cluster_t *self, const proto_msg_t *hello)
{
    proto_msg_t m = {
        .type = P_HELLO_ACK, .id = keys_id(self->keys), .idlen = PROTO_ID_LEN,
        .name = self->cfg->name, .namelen = strlen(self->cfg->name),
        .incarnation = self->incarnation,
    };
    s_answer(self, &m, hello->id, hello->idlen);
}

static void s_on_hello(cluster_t *self, const proto_msg_t *h, const char *addr,
                       const uint8_t *key)
{
    if (h->idlen == PROTO_ID_LEN && memcmp(h->id, keys_id(self->keys), PROTO_ID_LEN) == 0) {
        /* Our own HELLO: we dialled ourselves; the HELLO_ACK tells the
           dialler so. Our id with another incarnation is another node. */
        if (h->incarnation == self->incarnation)
            s_hello_ack(self, h);
        else if (loop_now(self->loop) - self->last_twin_log > 60000) {
            log_warning("a node at %s says HELLO with our own id %.8s (copied state directory?), "
                        "ignoring", addr, keys_id(self->keys));
            self->last_twin_log = loop_now(self->loop);
        }
        return;
    }
    if (h->clusterlen != strlen(self->cfg->cluster) ||
        memcmp(h->cluster, self->cfg->cluster, h->clusterlen) != 0) {
        /* Another cluster's node: say so, once in a while. */
        int64_t now = loop_now(self->loop);
        if (now - self->last_foreign_log > 60000) {
            log_notice("node %.*s at %s belongs to cluster '%.*s', not '%s': ignoring it",
                       (int) h->namelen, h->name, addr, (int) h->clusterlen, h->cluster,
                       self->cfg->cluster);
            self->last_foreign_log = now;
        }
        s_refuse(self, h->id, h->idlen, EACCES, "another cluster");
        /* A peer we knew, restarted into another cluster: gone now. */
        member_t *known = cluster_by_id(self, h->id, h->idlen);
        if (known && peer_is_up(known->peer))
            s_restart(self, known, "it moved to another cluster");
        return;
    }
    member_t *m = cluster_by_id(self, h->id, h->idlen);
    /* A HELLO from a peer that is up: it has started over with us (its
       DEALER is new), so must we. HELLOs are only repeated until answered. */
    if (m) {
        peer_state_t st = peer_state(m->peer);
        uint64_t inc = peer_incarnation(m->peer);
        if (st == PEER_LOST)
            cluster_reap(self);
        else if (st == PEER_UP || (st == PEER_GREETED && inc != h->incarnation))
            s_restart(self, m, inc != h->incarnation ? "it restarted" : "it reconnected");
    }
    char endpoint[ENDPOINT_MAX];
    snprintf(endpoint, sizeof endpoint, strchr(addr, ':') ? "tcp://[%s]:%u" : "tcp://%s:%u",
             addr, (unsigned) h->port);
    if (!m) {
        /* A static peer still asking for its key may be this peer: its
           connection has just told it, authenticated. */
        m = s_by_endpoint(self, endpoint);
        if (m && peer_key(m->peer))
            m = NULL;
        if (m && (s_key_learned(self, m, key) < 0 || !peer_key(m->peer)))
            return;     /* ourselves, or a key known-peers refuses */
        if (!m && !cluster_room(self, "a node dialling us", 0)) {
            /* Busy: it says HELLO again in a second, and may get in then. */
            s_refuse(self, h->id, h->idlen, EUSERS, "too many peers: try again later");
            return;
        }
        if (!m && !(m = s_member_new(self, endpoint, 0, key)))
            return;
        m->dialled_us = 1;
        m->key_from = "its own HELLO, on the connection it authenticated";
        /* Heard of already, waiting to be dialled: known those ways too. */
        candidate_t k;
        if (candidates_take(self->candidates, key, &k)) {
            m->by_mdns |= k.by_mdns;
            m->found |= k.by_gossip ? FOUND_GOSSIP : 0;
        }
    }
    peer_t *p = m->peer;
    int was_up = peer_is_up(p);
    peer_set_name(p, h->name, h->namelen);
    if (peer_greeted(p, h->incarnation, h->heartbeat, h->seq) < 0)
        return;
    if (self->store)
        store_peer_hello(self->store, p, (h->flags & P_F_STORE) != 0);
    s_hello_ack(self, h);
    s_handshake(self, m, was_up);
}

/* A data message: bytes[len], inside msg, or (msg NULL) an item of a
   BATCH, copied into a message of its own only if it must wait. */
static void s_on_data(cluster_t *self, member_t *mb, const proto_msg_t *m, zmq_msg_t *msg,
                      const void *bytes, size_t len)
{
    peer_t *p = mb->peer;
    /* A peer speaks for its own clients only: the address ends in
       "@<its name>" (the codec checked the rest of its syntax). */
    const char *name = peer_name(p);
    size_t nlen = strlen(name);
    if (m->fromlen < nlen + 1 || m->from[m->fromlen - nlen - 1] != '@' ||
        memcmp(m->from + m->fromlen - nlen, name, nlen) != 0) {
        s_restart(self, mb, "it sent a message from another node's client");
        return;
    }
    if (peer_note(p, m->seq, len) < 0) {
        s_restart(self, mb, "out of memory holding its messages");
        return;
    }
    if (!peer_has_parked(p)) {
        if (deliver_from_peer(self->deliver, p, m, msg) == CLIENT_DONE) {
            peer_handed(p, m->seq);
            return;
        }
    }
    zmq_msg_t copy;
    if (!msg) {
        if (zmq_msg_init_size(&copy, len) < 0) {
            s_restart(self, mb, "out of memory holding its messages");
            return;
        }
        memcpy(zmq_msg_data(&copy), bytes, len);
        msg = &copy;
    }
    if (peer_park(p, msg) < 0) {
        if (msg == &copy)
            zmq_msg_close(&copy);
        s_restart(self, mb, "it does not honour flow control, or out of memory");
    }
}

/* A BATCH: each item is a data message of its own, in seq order. */
static void s_on_batch(cluster_t *self, member_t *mb, const proto_msg_t *batch)
{
    peer_t *p = mb->peer;
    const uint8_t *at = batch->list;
    peer_seen(p, loop_now(self->loop));
    for (unsigned i = 0; i < batch->count; i++) {
        const uint8_t *item;
        size_t len;
        proto_batch_next(&at, &item, &len);
        proto_msg_t m;
        if (proto_decode(item, len, &m) < 0 ||
            (m.type != P_MSG && m.type != P_REPLY && m.type != P_PUB)) {
            s_restart(self, mb, "it sent a malformed message");
            return;
        }
        if (!peer_in_order(p, m.seq)) {
            s_restart(self, mb, peer_lost_why(p));
            return;
        }
        uint32_t epoch = peer_epoch(p);
        s_on_data(self, mb, &m, NULL, item, len);
        if (peer_epoch(p) != epoch || peer_state(p) == PEER_LOST)
            return;     /* lost on the way: the rest is void */
    }
}

/* A list from a peer: its names and patterns, or peers it knows. */
static void s_on_list(cluster_t *self, member_t *mb, const proto_msg_t *m)
{
    if (m->type != P_PEERS) {
        directory_peer_list(self->dir, mb->peer, m);
        return;
    }
    const uint8_t *at = m->list;
    for (unsigned i = 0; i < m->count; i++) {
        const char *id, *name, *endpoint, *key;
        size_t idlen, namelen, eplen, keylen;
        proto_list_next(&at, &id, &idlen);
        proto_list_next(&at, &name, &namelen);
        proto_list_next(&at, &endpoint, &eplen);
        proto_list_next(&at, &key, &keylen);   /* its id's: checked */
        char ep[ENDPOINT_MAX];
        member_t *known = cluster_by_id(self, id, idlen);
        if (known)
            known->found |= FOUND_GOSSIP;
        if (eplen >= sizeof ep || memcmp(id, keys_id(self->keys), PROTO_ID_LEN) == 0 || known)
            continue;
        memcpy(ep, endpoint, eplen);
        ep[eplen] = 0;
        if (!s_by_endpoint(self, ep) && !s_is_self_endpoint(self, ep)) {
            if (self->cfg->verbose)
                log_info("peer %s heard of %.*s at %s", peer_name(mb->peer),
                         (int) namelen, name, ep);
            s_candidate(self, ep, (const uint8_t *) key, 0);
        }
    }
}

/* Is this message from the node whose id its routing id is? Its
   connection's User-Id is the key it authenticated with (keys.c). */
static int s_from_owner(cluster_t *self, const char *uid, const char *addr, const char *rid,
                        size_t ridlen)
{
    if (uid && ridlen == PROTO_ID_LEN && strlen(uid) >= PROTO_ID_LEN &&
        memcmp(uid, rid, PROTO_ID_LEN) == 0)
        return 1;
    int64_t now = loop_now(self->loop);
    if (now - self->last_spoof_log > 10000) {
        log_warning("a node at %s with key %.16s... speaks as %.*s, not its own id: ignoring it",
                    addr ? addr : "?", uid ? uid : "?", (int) (ridlen > 64 ? 64 : ridlen), rid);
        self->last_spoof_log = now;
    }
    return 0;
}

void cluster_input(cluster_t *self, const char *uid, const char *peer_address,
                   const void *rid_data, size_t ridlen, zmq_msg_t *body)
{
    const char *rid = rid_data;
    if (!s_from_owner(self, uid, peer_address, rid, ridlen))
        return;
    proto_msg_t m;
    int rc = proto_decode(zmq_msg_data(body), zmq_msg_size(body), &m);
    /* The sender of the last message most likely sent this one too. */
    member_t *mb = self->last_member;
    if (!mb || ridlen != PROTO_ID_LEN || memcmp(peer_id(mb->peer), rid, PROTO_ID_LEN) != 0)
        mb = self->last_member = cluster_by_id(self, rid, ridlen);
    peer_t *p = mb ? mb->peer : NULL;
    const char *addr = "?";
    /* m is filled only when decoding succeeded (or for -EPROTO, its head). */
    if (rc == -EPROTO || (rc == 0 && m.type == P_HELLO) || (rc < 0 && !p)) {
        addr = peer_address;
        if (!addr)
            addr = "?";
        else if (strncmp(addr, "::ffff:", 7) == 0 && strchr(addr + 7, '.'))
            addr += 7;      /* IPv4 on a dual-stack socket: dialled as IPv4 */
    }
    if (rc == -EPROTO) {
        log_error("node at %s speaks protocol version %u, we speak %u: refusing it",
                  addr, m.version, PROTO_VERSION);
        s_refuse(self, rid, ridlen, EPROTO, "protocol version not supported");
        return;
    }
    if (rc < 0) {
        log_warning("malformed message from %s (%s)%s", p ? peer_name(p) : "an unknown node",
                    addr, p ? "; dropping the peer" : ", ignoring");
        if (p)
            s_restart(self, mb, "it sent a malformed message");
        return;
    }
    if (m.type == P_HELLO) {
        if (m.idlen != ridlen || memcmp(m.id, rid, m.idlen) != 0) {
            log_warning("HELLO from %s claims an id its connection does not carry, ignoring", addr);
            return;
        }
        uint8_t key[PROTO_KEY_LEN];
        if (strlen(uid) >= 2 * PROTO_KEY_LEN && proto_unhex(uid, PROTO_KEY_LEN, key) == 0)
            s_on_hello(self, &m, addr, key);
        return;
    }
    peer_state_t st = p ? peer_state(p) : PEER_LOST;
    if (st != PEER_GREETED && st != PEER_UP)
        return;         /* from before its HELLO: stale */
    if (st == PEER_UP && loop_now(self->loop) - peer_last_seen(p) > peer_timeout(p)) {
        /* Silent past its timeout, yet talking: we were stalled (stopped,
           swapped out) and it has surely given us up and failed back what
           we had not acknowledged. What it sent before that is void. */
        s_restart(self, mb, "silent past its timeout (were we stalled?)");
        return;
    }
    if (m.type == P_BATCH) {
        s_on_batch(self, mb, &m);
        return;
    }
    if (!peer_in_order(p, m.seq)) {
        s_restart(self, mb, peer_lost_why(p));
        return;
    }
    peer_seen(p, loop_now(self->loop));
    switch (m.type) {
    case P_MSG:
    case P_REPLY:
    case P_PUB:
        s_on_data(self, mb, &m, body, zmq_msg_data(body), zmq_msg_size(body));
        break;
    case P_NAMES_ADD:
    case P_NAMES_DEL:
    case P_SUBS_ADD:
    case P_SUBS_DEL:
    case P_PEERS:
        s_on_list(self, mb, &m);
        break;
    case P_ACK:
        deliver_peer_ack(self->deliver, p, &m);
        break;
    case P_STORE_RECORDS:
    case P_STORE_DIGEST:
        if (self->store)
            store_peer_message(self->store, p, &m);
        break;
    case P_FAIL:
        deliver_peer_fail(self->deliver, p, &m);
        break;
    case P_BYE:
        /* A static peer is dialled until it returns; one found otherwise
           finds us again through its own seeds or its mDNS record. */
        if (mb->is_static)
            s_restart(self, mb, "it said goodbye");
        else
            s_forget(self, mb, "it said goodbye");
        break;
    case P_CREDIT:
        if (peer_credited(p, m.ack, m.credit)) {
            vec_t waiters;
            peer_take_waiters(p, &waiters);
            for (size_t i = 0; i < waiters.size; i++)
                client_wake(waiters.items[i]);
            vec_free(&waiters);
        }
        break;
    default:
        break;          /* HELLO_ACK, PING, PONG belong on a DEALER */
    }
}

/* One message on the ROUTER: [routing id][body]. */
static void s_router_message(cluster_t *self, zmq_msg_t *rid, zmq_msg_t *body)
{
    cluster_input(self, zmq_msg_gets(body, "User-Id"), zmq_msg_gets(body, "Peer-Address"),
                  zmq_msg_data(rid), zmq_msg_size(rid), body);
}

/* Reads what the ROUTER has, a bounded batch. Returns 1 if more is left. */
static int s_router_drain(cluster_t *self)
{
    void *router = self->router;
    /* Until EAGAIN, which also takes in ZeroMQ's pending commands: asking
       ZMQ_EVENTS first would cost a poll() and a getpid() per message. */
    self->router_touched = 0;
    for (int i = 0; i < 1024; i++) {
        zmq_msg_t rid, body;
        zmq_msg_init(&rid);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            return 0;
        }
        int more = zmq_msg_more(&rid);
        if (more && zmq_msg_recv(&body, router, ZMQ_DONTWAIT) >= 0 && !zmq_msg_more(&body))
            s_router_message(self, &rid, &body);
        else {
            /* Not [id][one frame]: skip the rest of it. */
            while (zmq_msg_more(&body) && zmq_msg_recv(&body, router, ZMQ_DONTWAIT) >= 0)
                ;
        }
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
    self->router_touched = 1;   /* more to read: on the next turn */
    return 1;
}

static void s_router_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    s_router_drain(arg);
}

/* --- the DEALERs ------------------------------------------------------------------------ */

/* What comes back on a DEALER: HELLO_ACK, PONG, FAIL. Returns -1 if the
   member was freed. */
static int s_dealer_message(cluster_t *self, member_t *mb, const uint8_t *data, size_t size)
{
    peer_t *p = mb->peer;
    proto_msg_t m;
    int rc = proto_decode(data, size, &m);
    if (rc < 0) {
        log_warning("malformed answer from %s, ignoring", peer_endpoint(p));
        return 0;
    }
    if (m.type == P_FAIL && m.tolen == 0 && m.error == EUSERS) {
        /* Busy with other peers: our HELLO is said again each second. */
        int64_t now = loop_now(self->loop);
        if (now - mb->last_refused_log > LOG_EVERY_MS) {
            log_notice("node at %s is busy: %.*s", peer_endpoint(p), (int) m.textlen, m.text);
            mb->last_refused_log = now;
        }
        member_why(mb, "refused: it is busy (%.*s)", (int) m.textlen, m.text);
        return 0;
    }
    if (m.type == P_FAIL && (m.error == EPROTO || m.error == EACCES)) {
        /* Refused: a static peer is asked again (it may be reconfigured),
           once a second, said once a minute; one found otherwise is
           forgotten. */
        int64_t now = loop_now(self->loop);
        if (!mb->is_static || now - mb->last_refused_log > 60000) {
            log_notice("node at %s refused us: %.*s", peer_endpoint(p), (int) m.textlen, m.text);
            mb->last_refused_log = now;
        }
        member_why(mb, "refused: %.*s%s", (int) m.textlen, m.text,
                   m.error == EPROTO ? " (another protocol version)" : "");
        if (!mb->is_static) {
            s_forget(self, mb, "it refused us");
            return -1;
        }
        return 0;
    }
    if (m.type == P_PING || m.type == P_PONG) {
        /* A sign of life, unless it comes after we were stalled past the
           peer's timeout: it has given us up (see cluster_input). */
        if (peer_is_up(p) && loop_now(self->loop) - peer_last_seen(p) > peer_timeout(p)) {
            s_restart(self, mb, "silent past its timeout (were we stalled?)");
            return 0;
        }
        if (m.type == P_PONG)
            peer_ponged(p, m.stamp);
        else {
            /* Its heartbeat, on the light direction: answered there too. */
            peer_seen(p, loop_now(self->loop));
            proto_msg_t pong = { .type = P_PONG, .stamp = m.stamp };
            s_answer(self, &pong, peer_id(p), PROTO_ID_LEN);
        }
        return 0;
    }
    if (m.type != P_HELLO_ACK)
        return 0;
    if (!peer_key(p) || memcmp(m.id, peer_id(p), PROTO_ID_LEN) != 0) {
        /* It holds the key we dialled (CURVE proved it): its id is that
           key's, whatever it says. */
        log_warning("node at %s answers with id %.8s, not its key's %.8s: ignoring it",
                    peer_endpoint(p), m.id, peer_id(p));
        return 0;
    }
    if (memcmp(m.id, keys_id(self->keys), PROTO_ID_LEN) == 0) {
        /* We dialled ourselves (a seed list or gossip naming us). */
        s_self_endpoint(self, peer_endpoint(p));
        s_member_free(mb);
        return -1;
    }
    member_t *other = cluster_by_id(self, m.id, m.idlen);
    int freed = 0;
    if (other && other != mb) {
        /* The same peer reached two ways: keep one DEALER. */
        other->is_static |= mb->is_static;
        peer_state_t st = peer_state(other->peer);
        if (st != PEER_CONNECTING && st != PEER_GREETED) {
            s_member_free(mb);
            return -1;
        }
        peer_take_dealer(other->peer, p, s_dealer_ready, other);
        other->dialled = mb->dialled;
        s_member_free(mb);
        mb = other;
        p = other->peer;
        freed = 1;
    }
    int was_up = peer_is_up(p);
    peer_set_name(p, m.name, m.namelen);
    if (peer_acked(p) == 0)
        s_handshake(self, mb, was_up);
    return freed ? -1 : 0;
}

/* Reads a DEALER. Returns 1 if more may be left. */
static int s_dealer_drain(member_t *mb)
{
    cluster_t *self = mb->cluster;
    for (int i = 0; i < 256; i++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (peer_dealer_recv(mb->peer, &msg) < 0) {
            zmq_msg_close(&msg);
            return 0;
        }
        /* The member may be freed by what it says (a self dial, a merge). */
        int gone = s_dealer_message(self, mb, zmq_msg_data(&msg), zmq_msg_size(&msg)) < 0;
        zmq_msg_close(&msg);
        if (gone)
            return 1;
    }
    return 1;
}

static void s_dealer_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    s_dealer_drain(arg);
}

/* --- the idle pass ---------------------------------------------------------------------- */

/* Hands a peer's parked messages on, until one must wait again. */
static void s_resume(cluster_t *self, peer_t *p)
{
    zmq_msg_t *msg;
    while ((msg = peer_parked(p))) {
        proto_msg_t m;
        if (proto_decode(zmq_msg_data(msg), zmq_msg_size(msg), &m) == 0) {   /* checked before */
            if (deliver_from_peer(self->deliver, p, &m, msg) == CLIENT_BLOCKED)
                return;
            peer_handed(p, m.seq);
        }
        peer_parked_pop(p);
    }
}

void cluster_resume_parked(cluster_t *self)
{
    vec_t *runnable = &self->clients->runnable_peers;
    while (runnable->size > 0) {
        peer_t *p = runnable->items[--runnable->size];
        s_resume(self, p);
        peer_unref(&p);
    }
}

int cluster_idle(cluster_t *self)
{
    /* A socket we sent on may hold input its descriptor will not signal:
       the send consumed the edge. Read those before sleeping. */
    int more = self->router_touched && s_router_drain(self);
    for (size_t i = 0; i < self->members.size; i++)
        peer_flush(cluster_member(self, i)->peer);
    cluster_reap(self);
    for (size_t i = 0; i < self->members.size; i++) {
        member_t *mb = cluster_member(self, i);
        peer_t *p = mb->peer;
        if (peer_touched(p) && s_dealer_drain(mb))
            return 1;
        if (peer_wants_out(p) && peer_can_write(p)) {
            peer_writable(p);
            vec_t waiters;
            peer_take_waiters(p, &waiters);
            for (size_t k = 0; k < waiters.size; k++)
                client_wake(waiters.items[k]);
            vec_free(&waiters);
        }
    }
    return more;
}

/* --- the tick ------------------------------------------------------------------------------ */

/* One member's timers. Returns -1 if it was freed. */
static int s_tick_member(cluster_t *self, member_t *mb, int64_t now)
{
    peer_t *p = mb->peer;
    if (mb->suspect_since && now - mb->suspect_since >= SUSPECT_MS) {
        int silent = peer_last_seen(p) < mb->suspect_since;
        mb->suspect_since = 0;
        if (silent) {
            s_forget(self, mb, "its mDNS record went away and it does not answer");
            return -1;
        }
    }
    if (!peer_key(p)) {
        /* A static peer we still ask for its key. */
        int64_t every = mb->ask.tries < 10 ? KEY_ASK_MS : 2 * KEY_ASK_MS;
        if (now - mb->ask.asked >= every) {
            if (mb->ask.fd < 0)
                keyask_start(&mb->ask, self->loop, peer_endpoint(p), 0, s_key_answer, mb);
            else
                keyask_again(&mb->ask, self->loop);
        }
        return 0;
    }
    peer_state_t st = peer_state(p);
    if (!mb->is_static && mb->verified && st != PEER_UP && mb->down_since &&
        now - mb->down_since > FORGET_MS) {
        s_forget(self, mb, "down for ten minutes");
        return -1;
    }
    if (mb->reaped && now - mb->dialled > REDIAL_MS) {
        s_redial(mb);       /* could not be dialled again when reaped */
        return 0;
    }
    /* A node never met answers in milliseconds if it is there at all. */
    int64_t redial = !mb->verified && !mb->is_static ? UNMET_REDIAL_MS : REDIAL_MS;
    if ((st == PEER_CONNECTING || st == PEER_GREETED || st == PEER_ACKED) && !mb->verified &&
        !mb->is_static && now - mb->dialled > redial && ++mb->attempts >= ATTEMPTS_MAX) {
        /* Never met, and it does not answer: whoever named it is not
           believed again for a while. */
        member_why(mb, "never answered %u dials: forgotten for five minutes", mb->attempts);
        log_info("peer at %s never answered (%u dials): forgetting it", peer_endpoint(p),
                 mb->attempts);
        candidates_failed_add(self->candidates, peer_id(p), now);
        s_forget(self, mb, "it never answered");
        return -1;
    }
    if ((st == PEER_CONNECTING || st == PEER_GREETED) && mb->ask.fd < 0 &&
        now - mb->dialled > redial) {
        /* No handshake: ZeroMQ does not dial again after a refusal (our
           key not authorized there, which may change), and a key learned
           on first use may be stale. Dialled anew, after asking for the
           key again if it was learned so. */
        member_why(mb, "no handshake with %s since it was dialled: it is down or firewalled, "
                   "or its key is not the one we have, or ours is not authorized there",
                   peer_endpoint(p));
        if (now - mb->last_redial_log > 60000) {
            char key[41];
            zmq_z85_encode(key, peer_key(p), PROTO_KEY_LEN);
            log_notice("no handshake with %s yet: it is down, or its key is not %s, "
                       "or ours is not authorized there; dialling again", peer_endpoint(p), key);
            mb->last_redial_log = now;
        }
        if (s_dial(mb) < 0) {
            s_forget(self, mb, "cannot connect");
            return -1;
        }
        if (mb->key_tofu)
            keyask_start(&mb->ask, self->loop, peer_endpoint(p), 1, s_key_answer, mb);
    } else if (mb->ask.fd >= 0 && now - mb->ask.asked >= 2 * KEY_ASK_MS) {
        if (mb->ask.tries < 10)
            keyask_again(&mb->ask, self->loop);
        else
            keyask_stop(&mb->ask, self->loop);
    }
    if (st == PEER_UP && now - peer_last_seen(p) > peer_timeout(p)) {
        char why[64];
        snprintf(why, sizeof why, "silent for %lld ms", (long long) (now - peer_last_seen(p)));
        s_restart(self, mb, why);
        return 0;
    }
    if (peer_ping_due(p, now, self->cfg->heartbeat))
        s_ping(self, p);
    if (peer_is_up(p))
        peer_send_credit(p);
    else
        peer_hello_due(p, now, HELLO_EVERY_MS);
    return 0;
}

static void s_tick(loop_t *loop, void *arg)
{
    cluster_t *self = arg;
    int64_t now = loop_now(loop);
    for (size_t i = 0; i < self->members.size; i++)
        if (s_tick_member(self, cluster_member(self, i), now) < 0)
            i--;
    s_dial_candidates(self);
    self->tick = loop_timer_add(loop, TICK_MS, s_tick, self);
}

/* --- what the node asks ---------------------------------------------------------------------- */

void cluster_hand_over(cluster_t *self)
{
    keys_hand_over(self->keys);
}

void cluster_set_store(cluster_t *self, struct store *store)
{
    self->store = store;
}

const char *cluster_id(const cluster_t *self)
{
    return keys_id(self->keys);
}

int cluster_port(const cluster_t *self)
{
    return self->port;
}

/* mDNS found a node, or its record went away. */
static void s_mdns(void *arg, const char *id, const char *name, const char *endpoint,
                   const unsigned char *key, int up)
{
    cluster_t *self = arg;
    member_t *mb = cluster_by_id(self, id, strlen(id));
    if (!up) {
        /* Gone from mDNS: dead (its daemon withdrew it) or only its
           avahi-daemon restarted. A ping decides, quickly. */
        if (mb && peer_is_up(mb->peer) && !mb->suspect_since) {
            mb->suspect_since = loop_now(self->loop);
            s_ping(self, mb->peer);
        } else if (mb && !peer_is_up(mb->peer) && mb->by_mdns && !mb->is_static)
            s_forget(self, mb, "its mDNS record went away");
        return;
    }
    if (mb) {
        mb->by_mdns = 1;
        return;
    }
    if (s_is_self_endpoint(self, endpoint))
        return;
    mb = s_by_endpoint(self, endpoint);
    if (mb && peer_id(mb->peer)[0])
        return;
    if (mb) {
        /* A static peer still asking for its key: the record has it. */
        if (s_key_learned(self, mb, key) == 0)
            mb->by_mdns = 1;
        return;
    }
    /* Its id is its key's; the handshake proves it holds that key. */
    log_info("mDNS: found %s (%.8s) at %s", name, id, endpoint);
    s_candidate(self, endpoint, key, 1);
}

/* --- life ------------------------------------------------------------------------------------ */

cluster_t *cluster_new(loop_t *loop, const node_config_t *config, clients_t *clients,
                       directory_t *dir, deliver_t *deliver, requests_t *requests)
{
    cluster_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->cfg = config;
    self->clients = clients;
    self->dir = dir;
    self->deliver = deliver;
    self->requests = requests;
    self->router_fd = -1;
    self->last_foreign_log = self->last_twin_log = self->last_spoof_log = INT64_MIN / 2;
    self->last_full_log = self->last_gate_log = INT64_MIN / 2;
    if (!(self->candidates = candidates_new(config->max_unverified, loop_now(loop)))) {
        cluster_destroy(&self);
        return NULL;
    }
    /* Every peer is a socket: room for them all, set before the first. */
    zsys_set_max_sockets(config->max_peers + 64);
    if (getrandom(&self->incarnation, sizeof self->incarnation, 0) != sizeof self->incarnation)
        self->incarnation = (uint64_t) peer_now_us();
    if (!(self->keys = keys_new(loop, config))) {
        cluster_destroy(&self);
        return NULL;
    }
    keys_set_gate(self->keys, cluster_gate, self);
    self->router = zsys_socket(ZMQ_ROUTER, __FILE__, __LINE__);
    if (!self->router) {
        log_error("cannot create a ZeroMQ socket: %s", zmq_strerror(zmq_errno()));
        cluster_destroy(&self);
        return NULL;
    }
    zsock_set_router_handover(self->router, 1);
    zsock_set_router_mandatory(self->router, 1);
    zsock_set_linger(self->router, 0);
    zsock_set_rcvhwm(self->router, 0);
    /* Bytes from the network are untrusted: ZeroMQ refuses (and
       disconnects) a frame claiming more than the largest message we take,
       before allocating it. */
    zsock_set_maxmsgsize(self->router,
                         (int64_t) (peer_frame_bytes(config->max_message) + CURVE_OVERHEAD));
    zsock_set_sndhwm(self->router, ROUTER_HWM);
    zsock_set_zap_domain(self->router, "ipcnet");
    zsock_set_curve_server(self->router, 1);
    zsock_set_handshake_ivl(self->router, HANDSHAKE_MS);
    zcert_apply(keys_cert(self->keys), self->router);
    char port[16];
    if (config->port)
        snprintf(port, sizeof port, "%u", config->port);
    else
        strcpy(port, "*");
    /* IPv6 too: "*" is then every address of both families (ZeroMQ falls
       back to IPv4 where the kernel has no IPv6); an IPv6 address is
       written in brackets. */
    zsock_set_ipv6(self->router, 1);
    int v6 = strchr(config->bind, ':') && config->bind[0] != '[';
    char ours[ENDPOINT_MAX + 16], bound[ENDPOINT_MAX + 16];
    size_t boundlen = sizeof bound, fdlen = sizeof self->router_fd;
    snprintf(ours, sizeof ours, v6 ? "tcp://[%s]:%s" : "tcp://%s:%s", config->bind, port);
    if (zmq_bind(self->router, ours) < 0 ||
        zmq_getsockopt(self->router, ZMQ_LAST_ENDPOINT, bound, &boundlen) < 0 ||
        zmq_getsockopt(self->router, ZMQ_FD, &self->router_fd, &fdlen) < 0) {
        log_error("cannot listen on tcp://%s:%s: %s", config->bind, port,
                  zmq_strerror(zmq_errno()));
        self->router_fd = -1;
        cluster_destroy(&self);
        return NULL;
    }
    const char *colon = strrchr(bound, ':');
    self->port = colon ? atoi(colon + 1) : (int) config->port;
    self->router_touched = 1;
    loop_fd_add(loop, self->router_fd, LOOP_IN, s_router_ready, self);
    keys_answer(self->keys, self->port);
    self->env = (peer_env_t) {
        .loop = loop, .cert = keys_cert(self->keys), .id = keys_id(self->keys),
        .window = config->window, .max_answer = 64 * 1024,
        .hello = {
            .type = P_HELLO, .flags = P_F_STORE, .id = keys_id(self->keys),
            .idlen = PROTO_ID_LEN,
            .name = config->name, .namelen = strlen(config->name),
            .cluster = config->cluster, .clusterlen = strlen(config->cluster),
            .port = (uint16_t) self->port, .incarnation = self->incarnation,
            .heartbeat = config->heartbeat,
        },
    };
    log_notice("node id %s listening on tcp://%s:%d, key %s", keys_id(self->keys), config->bind,
               self->port, keys_public_txt(self->keys));
    if (keys_closed(self->keys))
        log_notice("taking only the nodes whose keys are in %s", config->authorized_keys);
    else
        log_notice("open: any node that reaches port %d may join (see --authorized-keys)",
                   self->port);
    for (size_t i = 0; i < config->npeers; i++) {
        char endpoint[ENDPOINT_MAX];
        uint8_t key[PROTO_KEY_LEN];
        int has_key;
        if (keys_parse_peer(config->peers[i], endpoint, sizeof endpoint, key, &has_key) < 0)
            log_warning("peer %s is not tcp://HOST:PORT[#KEY], ignoring", config->peers[i]);
        else if (!s_by_endpoint(self, endpoint) &&
                 !s_member_new(self, endpoint, 1, has_key ? key : NULL) &&
                 !s_is_self_endpoint(self, endpoint))
            log_warning("cannot add peer %s, ignoring", config->peers[i]);
    }
    self->tick = loop_timer_add(loop, TICK_MS, s_tick, self);
    if (!config->no_mdns &&
        !(self->mdns = mdns_new(loop, config->name, keys_id(self->keys),
                                keys_public_txt(self->keys), config->cluster, self->port,
                                s_mdns, self)))
        log_warning("mDNS off: out of memory");
    return self;
}

void cluster_destroy(cluster_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cluster_t *self = *self_p;
    mdns_destroy(&self->mdns);
    /* Goodbye to every peer, given a moment to leave. */
    for (size_t i = 0; i < self->members.size; i++) {
        peer_t *p = cluster_member(self, i)->peer;
        if (peer_is_up(p))
            peer_bye(p);
    }
    while (self->members.size > 0)
        s_member_free(cluster_member(self, self->members.size - 1));
    vec_free(&self->members);
    candidates_destroy(&self->candidates);
    loop_timer_cancel(self->loop, self->tick);
    if (self->router_fd >= 0)
        loop_fd_del(self->loop, self->router_fd);
    if (self->router)
        zsys_close(self->router, __FILE__, __LINE__);
    keys_destroy(&self->keys);
    proto_free(&self->out);
    proto_free(&self->env.out);
    free(self);
    *self_p = NULL;
}
