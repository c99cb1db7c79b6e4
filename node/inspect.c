/*  inspect.c: what the node says of its peers: the peers listing, with
    every way each is known and what last kept it from being up, and
    --diagnose, which answers "why don't my nodes see each other" step by
    step: how the node heard of the peer, where it has its key, when it
    dialled, how far the handshake went, and what went wrong last. */

#include "member.h"

#include <czmq.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void member_why(member_t *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->why, sizeof m->why, fmt, ap);
    va_end(ap);
    /* One field of a listing: no tab or newline. */
    for (char *p = m->why; *p; p++)
        if (*p == '\t' || *p == '\n' || *p == '\r')
            *p = ' ';
    m->why_at = loop_now(m->cluster->loop);
}

const char *member_source(const member_t *m, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s%s", m->is_static ? ",static" : "", m->by_mdns ? ",mdns" : "",
             m->found & FOUND_GOSSIP ? ",gossip" : "", m->dialled_us ? ",incoming" : "");
    if (!buf[0])
        snprintf(buf, size, ",gossip");      /* heard of it first from a peer */
    memmove(buf, buf + 1, strlen(buf));
    return buf;
}

void member_forgotten(cluster_t *self, const member_t *m, const char *why)
{
    size_t i = self->forgotten_next++ % FORGOTTEN_MAX;
    peer_t *p = m->peer;
    snprintf(self->forgotten[i].name, sizeof self->forgotten[i].name, "%s", peer_name(p));
    snprintf(self->forgotten[i].id, sizeof self->forgotten[i].id, "%s", peer_id(p));
    snprintf(self->forgotten[i].endpoint, sizeof self->forgotten[i].endpoint, "%s",
             peer_endpoint(p));
    /* Why it went, and what went wrong before, as far as it fits. */
    int n = snprintf(self->forgotten[i].why, sizeof self->forgotten[i].why, "%s", why);
    if (m->why[0] && n > 0 && (size_t) n < sizeof self->forgotten[i].why)
        snprintf(self->forgotten[i].why + n, sizeof self->forgotten[i].why - (size_t) n,
                 "; before that: %.*s", (int) (sizeof self->forgotten[i].why - (size_t) n),
                 m->why);
    self->forgotten[i].at = loop_now(self->loop);
}

void cluster_list(cluster_t *self, text_t *out)
{
    int64_t now = loop_now(self->loop);
    int v6 = strchr(self->cfg->bind, ':') && self->cfg->bind[0] != '[';
    text_printf(out, v6 ? "%s\t%s\ttcp://[%s]:%d\tself\tup\t0\t0\t%s\t-\n"
                        : "%s\t%s\ttcp://%s:%d\tself\tup\t0\t0\t%s\t-\n", self->cfg->name,
                keys_id(self->keys), self->cfg->bind, self->port, keys_public_txt(self->keys));
    for (size_t i = 0; i < self->members.size; i++) {
        member_t *mb = cluster_member(self, i);
        peer_t *p = mb->peer;
        char key[41] = "-", how[64];
        if (peer_key(p))
            zmq_z85_encode(key, peer_key(p), PROTO_KEY_LEN);
        int up = peer_is_up(p);
        text_printf(out, "%s\t%s\t%s\t%s\t%s\t%lld\t%lld\t%s\t%s\n", peer_name(p),
                    peer_id(p)[0] ? peer_id(p) : "-", peer_endpoint(p),
                    member_source(mb, how, sizeof how), peer_state_name(peer_state(p)),
                    (long long) peer_rtt_us(p), (long long) (now - peer_last_seen(p)), key,
                    up || !mb->why[0] ? "-" : mb->why);
    }
}

/* Does about name this peer: its name, its id (or a prefix of 8 or more
   digits), its address (with or without tcp://)? */
static int s_is(const char *name, const char *id, const char *ep, const char *about)
{
    size_t len = strlen(about);
    return strcmp(name, about) == 0 || (len >= 8 && id[0] && strncmp(id, about, len) == 0) ||
           strcmp(ep, about) == 0 || (strncmp(ep, "tcp://", 6) == 0 && strcmp(ep + 6, about) == 0);
}

static double s_ago(int64_t now, int64_t then)
{
    return (double) (now - then) / 1000.0;
}

void cluster_diagnose(cluster_t *self, const char *about, text_t *out)
{
    int64_t now = loop_now(self->loop);
    if (s_is(self->cfg->name, keys_id(self->keys), "", about)) {
        text_printf(out, "%s is this node (id %s), listening for peers on port %d\n",
                    self->cfg->name, keys_id(self->keys), self->port);
        return;
    }
    int found = 0;
    for (size_t i = 0; i < self->members.size; i++) {
        member_t *m = cluster_member(self, i);
        peer_t *p = m->peer;
        if (!s_is(peer_name(p), peer_id(p), peer_endpoint(p), about))
            continue;
        found++;
        char how[64], key[41] = "";
        text_printf(out, "peer %s (id %s) at %s\n", peer_name(p),
                    peer_id(p)[0] ? peer_id(p) : "not known yet", peer_endpoint(p));
        text_printf(out, "  known through: %s, for %.1f s%s\n", member_source(m, how, sizeof how),
                    s_ago(now, m->known_at),
                    m->dialled_us ? " (it dialled us and proved its key)" : "");
        if (peer_key(p)) {
            zmq_z85_encode(key, peer_key(p), PROTO_KEY_LEN);
            text_printf(out, "  key: %s, from %s\n", key, m->key_from ? m->key_from : "?");
        } else
            text_printf(out, "  key: not known yet: asked at its address (KEY question, "
                        "%u asked)%s\n", m->ask.tries,
                        m->ask.fd >= 0 ? ", waiting for the answer" : "");
        peer_state_t st = peer_state(p);
        text_printf(out, "  state: %s", peer_state_name(st));
        if (st == PEER_UP)
            text_printf(out, " for %.1f s, round trip %lld us, heard from %.1f s ago\n",
                        s_ago(now, m->up_at), (long long) peer_rtt_us(p),
                        s_ago(now, peer_last_seen(p)));
        else if (m->dialled)
            text_printf(out, ", last dialled %.1f s ago%s%s\n", s_ago(now, m->dialled),
                        m->attempts ? ", dials without an answer: " : "",
                        m->attempts ? (m->attempts == 1 ? "1" : m->attempts == 2 ? "2" : "3+")
                                    : "");
        else
            text_printf(out, "\n");
        if (st != PEER_UP) {
            /* What each state means it waits for. */
            static const char *const waits[] = {
                [PEER_ASKING_KEY] = "its key, to dial it",
                [PEER_CONNECTING] = "our HELLO to be answered: no answer yet from its address",
                [PEER_ACKED] = "its HELLO on our port (it answered ours; it must dial us back)",
                [PEER_GREETED] = "its HELLO_ACK (it dialled us; our HELLO to it is unanswered)",
                [PEER_LOST] = "to be dialled again",
            };
            if ((size_t) st < sizeof waits / sizeof *waits && waits[st])
                text_printf(out, "  waiting for: %s\n", waits[st]);
        }
        if (m->why[0])
            text_printf(out, "  %s: %s (%.1f s ago)\n", st == PEER_UP ? "last trouble" : "why not up",
                        m->why, s_ago(now, m->why_at));
        else if (st != PEER_UP)
            text_printf(out, "  why not up: nothing went wrong yet: it is being dialled\n");
    }
    for (size_t i = 0; i < FORGOTTEN_MAX; i++) {
        const char *name = self->forgotten[i].name, *id = self->forgotten[i].id,
                   *ep = self->forgotten[i].endpoint;
        if (!self->forgotten[i].at || !s_is(name, id, ep, about))
            continue;
        found++;
        text_printf(out, "forgotten %.1f s ago: %s (id %s) at %s: %s\n",
                    s_ago(now, self->forgotten[i].at), name, id[0] ? id : "-", ep,
                    self->forgotten[i].why);
        if (id[0] && candidates_failed(self->candidates, id, now))
            text_printf(out, "  not dialled again from gossip or mDNS for a while (it never "
                        "answered); a --peer is dialled regardless\n");
    }
    candidate_t k;
    if (candidates_lookup(self->candidates, about, &k)) {
        found++;
        text_printf(out, "heard of (%s) at %s, waiting to be dialled: %zu wait, dialled a "
                    "few a second as room allows\n", k.by_mdns ? "mDNS" : "gossip", k.endpoint,
                    candidates_waiting(self->candidates));
    }
    if (!found)
        text_printf(out, "%s: not known: no peer of that name, id or address, none "
                    "forgotten lately, none waiting to be dialled. Is it of this cluster (%s)? "
                    "On this LAN with mDNS, or named with --peer, or by a peer we have?\n",
                    about, self->cfg->cluster);
}
