/*  room.c: room for peers: how many nodes not met yet may be dialled, which
    connections to our ROUTER may take a descriptor (the ZAP gate), and
    which host is the least busy for the next dial. The limits are
    docs/limits.md's; the members themselves are cluster.c's. */

#include "member.h"
#include "log.h"

#include <string.h>

/* Peers being dialled that we have not met, static ones aside; and of
   them (hearsay) those only heard of, which did not dial us first. */
size_t cluster_unverified(const cluster_t *self, size_t *hearsay)
{
    size_t n = 0, h = 0;
    for (size_t i = 0; i < self->members.size; i++) {
        const member_t *m = cluster_member(self, i);
        n += !m->verified && !m->is_static;
        h += !m->verified && !m->is_static && !m->dialled_us;
    }
    if (hearsay)
        *hearsay = h;
    return n;
}

/* Is there room for one more peer not met yet? Nodes only heard of may
   take half the places of --max-unverified: the other half is kept for
   nodes that dial us, so that a flood of names cannot lock real nodes
   out. Says once a minute why not (a flood, or a limit set too low). */
int cluster_room(cluster_t *self, const char *what, int hearsay)
{
    const node_config_t *cfg = self->cfg;
    size_t heard, unmet = cluster_unverified(self, &heard);
    size_t half = cfg->max_unverified / 2 ? cfg->max_unverified / 2 : 1;
    const char *full = self->members.size >= cfg->max_peers ? "--max-peers"
                     : unmet >= cfg->max_unverified ? "--max-unverified"
                     : hearsay && heard >= half ? "half of --max-unverified" : NULL;
    if (!full)
        return 1;
    int64_t now = loop_now(self->loop);
    if (now - self->last_full_log > LOG_EVERY_MS) {
        log_warning("%s: %zu peers known, %zu not yet met: at %s, waiting", what,
                    self->members.size, unmet, full);
        self->last_full_log = now;
    }
    return 0;
}

/* Asked by ZAP about each connection to our ROUTER: it takes a
   descriptor. One of a node we know may use all but FDS_KEPT; one of a
   node we do not must also leave room for every local client that may
   still come (--max-clients), so that peers, refused or not, cannot
   starve the local side of descriptors. */
int cluster_gate(void *arg, const uint8_t *key)
{
    cluster_t *self = arg;
    char id[PROTO_ID_LEN + 1];
    proto_key_id(key, id);
    long left = loop_fds_free();
    if (left < 0)
        return 1;
    long keep = FDS_KEPT;
    size_t clients = directory_nclients(self->dir);
    if (!cluster_by_id(self, id, PROTO_ID_LEN) && self->cfg->max_clients > clients)
        keep += (long) (self->cfg->max_clients - clients);
    if (left > keep)
        return 1;
    int64_t now = loop_now(self->loop);
    if (now - self->last_gate_log > LOG_EVERY_MS) {
        log_warning("a node dialling us (%.8s) turned away: %ld descriptors left, %ld kept for "
                    "local clients and known peers (raise LimitNOFILE= or lower --max-clients)",
                    id, left, keep);
        self->last_gate_log = now;
    }
    return 0;
}

/* Dials under way to nodes not met at this host: the next candidate is
   one of the least busy hosts. */
size_t cluster_host_busy(void *arg, const char *host, size_t len)
{
    cluster_t *self = arg;
    size_t n = 0;
    for (size_t i = 0; i < self->members.size; i++) {
        const member_t *m = cluster_member(self, i);
        size_t hl;
        const char *h = candidates_host(peer_endpoint(m->peer), &hl);
        n += !m->verified && hl == len && memcmp(h, host, len) == 0;
    }
    return n;
}

