/*  member.h: the cluster's own view of its peers, shared by cluster.c (what
    peers say, the tick, membership), room.c (room for more) and inspect.c
    (what the node says of them: the peers listing and --diagnose). Not for
    other modules. */
#ifndef IPCNET_MEMBER_H
#define IPCNET_MEMBER_H

#include "candidates.h"
#include "cluster.h"
#include "keys.h"
#include "mdns.h"
#include "peer.h"

#include <string.h>

#define TICK_MS         50
#define HELLO_EVERY_MS  1000
#define ENDPOINT_MAX    128
#define SUSPECT_MS      400         /* a peer whose record went must answer by then */
#define KEY_ASK_MS      500         /* a KEY question unanswered is asked again */
#define UNMET_REDIAL_MS 2000        /* a node heard of and never met: the same, sooner */
#define REDIAL_MS       5000        /* a dial not answered by then is made anew (a
                                       key learned on first use asked again) */
#define CURVE_OVERHEAD  64          /* a CURVE MESSAGE command around a frame */
#define ROUTER_HWM      100000
#define SELF_MAX        4
#define HANDSHAKE_MS    10000       /* ZeroMQ drops a connection not secured by then */
#define ATTEMPTS_MAX    3           /* dials of a node never met before it is forgotten */
#define FORGET_MS       600000      /* a node met before, down this long, is forgotten */
#define LOG_EVERY_MS    60000
#define FDS_KEPT        32          /* descriptors a connection of a peer never takes */
#define FORGOTTEN_MAX   64          /* peers forgotten that --diagnose remembers */

/* Ways a peer is known (member_t.found). */
enum { FOUND_GOSSIP = 1 };

/* A peer as the cluster knows it: its link, how it was found, and what
   last kept it from being up. */
typedef struct {
    struct cluster *cluster;
    peer_t *peer;
    int is_static;
    int dialled_us;             /* met through its HELLO, not heard of: proved its key */
    int by_mdns;                /* found (also) through mDNS */
    unsigned found;             /* FOUND_*: the other ways */
    const char *key_from;       /* how we have its key, in words */
    char why[200];              /* the last thing that kept it from being up */
    int64_t why_at, known_at, up_at;
    int key_tofu;               /* key learned from a KEY answer, not configured */
    keyask_t ask;               /* asking its endpoint for its key */
    int64_t dialled;
    int reaped;                 /* lost, and its incarnation forgotten */
    int verified;               /* has been up: we have met it */
    unsigned attempts;          /* dials without a handshake, while never met */
    int64_t down_since;         /* when it was last lost */
    int64_t suspect_since;      /* its mDNS record went away: is it alive? */
    int64_t last_refused_log, last_redial_log, last_key_log;
} member_t;

struct cluster {
    loop_t *loop;
    const node_config_t *cfg;
    clients_t *clients;
    directory_t *dir;
    deliver_t *deliver;
    requests_t *requests;
    keys_t *keys;
    struct store *store;        /* or NULL */
    peer_env_t env;             /* what every link shares */
    uint64_t incarnation;
    void *router;               /* a libzmq socket (czmq's zsock_new asserts on failure) */
    int router_fd;
    int router_touched;
    int port;
    vec_t members;              /* member_t */
    loop_timer_t *tick;
    proto_buf_t out;            /* answers on the ROUTER */
    char self_endpoints[SELF_MAX][ENDPOINT_MAX];    /* dialled and found to be us */
    size_t nself;
    mdns_t *mdns;
    member_t *last_member;      /* who sent the last ROUTER message */
    int64_t last_spoof_log, last_foreign_log, last_twin_log;
    /* nodes heard of (gossip, mDNS) but not met: dialled a bounded number
       at a time, at a bounded rate, and forgotten if they never answer */
    candidates_t *candidates;
    int64_t last_full_log, last_gate_log;
    /* peers forgotten lately, and why: for --diagnose */
    struct { char name[64], id[PROTO_ID_LEN + 1], endpoint[ENDPOINT_MAX], why[200];
             int64_t at; } forgotten[FORGOTTEN_MAX];
    size_t forgotten_next;
};


static inline member_t *cluster_member(const cluster_t *self, size_t i)
{
    return self->members.items[i];
}

/* What kept m from being up (printf-like), with the time: said in the
   peers listing's REASON and by --diagnose until it is up. */
void member_why(member_t *m, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));

/* The ways m is known, comma-separated ("static,mdns"), in buf. */
const char *member_source(const member_t *m, char *buf, size_t size);

/* m is forgotten for why: kept a while for --diagnose. */
void member_forgotten(cluster_t *self, const member_t *m, const char *why);

/* The member whose peer has id (PROTO_ID_LEN hex digits), or NULL. */
static inline member_t *cluster_by_id(cluster_t *self, const char *id, size_t len)
{
    if (len != PROTO_ID_LEN)
        return NULL;
    for (size_t i = 0; i < self->members.size; i++) {
        const char *pid = peer_id(cluster_member(self, i)->peer);
        if (pid[0] && memcmp(pid, id, len) == 0)
            return cluster_member(self, i);
    }
    return NULL;
}

/* room.c: peers being dialled that we have not met, static ones aside;
   of them (*hearsay) those only heard of. */
size_t cluster_unverified(const cluster_t *self, size_t *hearsay);

/* room.c: is there room for one more peer not met (what it is, for the
   log; hearsay: only heard of)? 1 or 0, said once a minute. */
int cluster_room(cluster_t *self, const char *what, int hearsay);

/* room.c: may a connection with this key take a descriptor? (ZAP) */
int cluster_gate(void *arg, const uint8_t *key);

/* room.c: dials under way to nodes not met at host (candidates_next). */
size_t cluster_host_busy(void *arg, const char *host, size_t len);

#endif
