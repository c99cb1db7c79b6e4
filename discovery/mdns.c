/*  mdns.c: DNS-SD publish and browse through avahi-client.

    Avahi's callbacks run on our loop through the AvahiPoll adapter. The
    client is made with AVAHI_CLIENT_NO_FAIL, so an absent daemon is a state
    (CONNECTING) rather than an error; when the daemon goes away the client
    is made anew and waits for it again. A service seen through several
    interfaces or protocols counts once: it is reported lost only when its
    last instance is removed.

    Anyone on the LAN can announce services, so what is kept is bounded:
    at most SEEN_MAX names (a newcomer past that takes the place of one at
    random that is not being resolved), resolved RESOLVING_MAX at a time
    (avahi-daemon refuses a client more than 1,024 objects), the others
    waiting their turn. */

#include "mdns.h"
#include "avahi_poll.h"
#include "log.h"
#include "proto.h"

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>
#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ID_LEN 32
#define SEEN_MAX        1024
#define RESOLVING_MAX   16

/* A service name seen on the network, and how many instances of it. */
typedef struct seen {
    struct seen *next;
    char *name;
    int instances;
    char id[ID_LEN + 1];        /* once resolved */
    AvahiServiceResolver *resolver;     /* while resolving */
    int waiting;                /* to be resolved: on iface, proto, in domain */
    AvahiIfIndex iface;
    AvahiProtocol proto;
    char *domain;
} seen_t;

struct mdns {
    loop_t *loop;
    avahi_poll_t *poll;
    AvahiClient *client;
    AvahiEntryGroup *group;
    AvahiServiceBrowser *browser;
    char *service;              /* our service name; changes on collision */
    char id[ID_LEN + 1];
    char key[41];               /* Z85 */
    char name[256];
    char cluster[64];
    int port;
    mdns_fn *fn;
    void *arg;
    seen_t *seen;
    size_t nseen, resolving;
    unsigned evicted;
    int64_t last_evict_log;
    uint32_t rng;
    int said_absent;            /* logged that the daemon is not there */
    loop_timer_t *retry;
    loop_timer_t *settle;       /* our record must be established by then */
};

static void s_client_new(mdns_t *self);

static void s_seen_free(seen_t *s)
{
    if (s->resolver)
        avahi_service_resolver_free(s->resolver);
    free(s->name);
    free(s->domain);
    free(s);
}

/* Full: one name not being resolved, at random, gives way. */
static void s_evict(mdns_t *self)
{
    self->rng = self->rng * 1103515245u + 12345u;
    size_t skip = (self->rng >> 8) % self->nseen;
    seen_t **at = &self->seen, **victim = NULL;
    for (size_t i = 0; *at; at = &(*at)->next, i++)
        if (!(*at)->resolver && (!victim || i <= skip))
            victim = at;
    if (!victim)
        return;
    seen_t *s = *victim;
    *victim = s->next;
    s_seen_free(s);
    self->nseen--;
    int64_t now = zclock_mono();
    self->evicted++;
    if (now - self->last_evict_log > 60000) {
        log_warning("mDNS: more than %d nodes announced: %u forgotten at random", SEEN_MAX,
                    self->evicted);
        self->evicted = 0;
        self->last_evict_log = now;
    }
}

static seen_t *s_seen(mdns_t *self, const char *name, int create)
{
    for (seen_t *s = self->seen; s; s = s->next)
        if (strcmp(s->name, name) == 0)
            return s;
    if (!create)
        return NULL;
    if (self->nseen >= SEEN_MAX)
        s_evict(self);
    if (self->nseen >= SEEN_MAX)
        return NULL;
    seen_t *s = calloc(1, sizeof *s);
    if (!s || !(s->name = strdup(name))) {
        free(s);
        return NULL;
    }
    s->next = self->seen;
    self->seen = s;
    self->nseen++;
    return s;
}

/* The resolvers themselves are freed with the client, or here. */
static void s_forget_seen(mdns_t *self, int free_resolvers)
{
    while (self->seen) {
        seen_t *s = self->seen;
        self->seen = s->next;
        if (!free_resolvers)
            s->resolver = NULL;
        s_seen_free(s);
    }
    self->nseen = self->resolving = 0;
}

/* --- publishing ---------------------------------------------------------------- */

static void s_register(mdns_t *self);

#define SETTLE_MS 5000      /* probing takes ~750 ms; five seconds is stuck */

/* Avahi 0.8 can leave a record registering for good when the link drops
   while it probes (avahi issue 234): a fresh entry group publishes. */
static void s_settle(loop_t *loop, void *arg)
{
    (void) loop;
    mdns_t *self = arg;
    self->settle = NULL;
    if (!self->client || !self->group ||
        avahi_entry_group_get_state(self->group) == AVAHI_ENTRY_GROUP_ESTABLISHED)
        return;
    log_notice("mDNS: '%s' not established after %d ms; publishing it again",
               self->service, SETTLE_MS);
    avahi_entry_group_free(self->group);
    self->group = NULL;
    s_register(self);
}

static void s_group_cb(AvahiEntryGroup *g, AvahiEntryGroupState state, void *arg)
{
    mdns_t *self = arg;
    self->group = g;
    if (state == AVAHI_ENTRY_GROUP_ESTABLISHED) {
        loop_timer_cancel(self->loop, self->settle);
        self->settle = NULL;
        log_info("mDNS: published '%s' (%s, port %d)", self->service, MDNS_TYPE, self->port);
    }
    else if (state == AVAHI_ENTRY_GROUP_COLLISION) {
        /* Another node has our name: take the next one, the Avahi way. */
        char *alt = avahi_alternative_service_name(self->service);
        log_notice("mDNS: service name '%s' is taken, trying '%s'", self->service, alt);
        avahi_free(self->service);
        self->service = alt;
        avahi_entry_group_reset(g);
        s_register(self);
    } else if (state == AVAHI_ENTRY_GROUP_FAILURE)
        log_warning("mDNS: publishing failed: %s",
                    avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))));
}

static void s_register(mdns_t *self)
{
    if (!self->group &&
        !(self->group = avahi_entry_group_new(self->client, s_group_cb, self))) {
        log_warning("mDNS: cannot make an entry group: %s",
                    avahi_strerror(avahi_client_errno(self->client)));
        return;
    }
    if (!avahi_entry_group_is_empty(self->group))
        return;
    char id[8 + ID_LEN], port[16], name[300], cluster[80], key[48], version[8];
    snprintf(id, sizeof id, "id=%s", self->id);
    snprintf(key, sizeof key, "key=%s", self->key);
    snprintf(version, sizeof version, "v=%d", PROTO_VERSION);
    snprintf(cluster, sizeof cluster, "cluster=%s", self->cluster);
    snprintf(port, sizeof port, "port=%d", self->port);
    snprintf(name, sizeof name, "name=%s", self->name);
    for (int tries = 0; tries < 16; tries++) {
        int rc = avahi_entry_group_add_service(self->group, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                               0, self->service, MDNS_TYPE, NULL, NULL,
                                               (uint16_t) self->port, id, version, port, name,
                                               cluster, key, NULL);
        if (rc == AVAHI_ERR_COLLISION) {
            char *alt = avahi_alternative_service_name(self->service);
            avahi_free(self->service);
            self->service = alt;
            continue;
        }
        if (rc < 0 || (rc = avahi_entry_group_commit(self->group)) < 0)
            log_warning("mDNS: cannot publish '%s': %s", self->service, avahi_strerror(rc));
        else if (!self->settle)
            self->settle = loop_timer_add(self->loop, SETTLE_MS, s_settle, self);
        return;
    }
}

/* --- browsing ------------------------------------------------------------------- */

/* The value of key in a TXT record list, copied into buf; NULL if absent. */
static const char *s_txt(AvahiStringList *txt, const char *key, char *buf, size_t size)
{
    AvahiStringList *item = avahi_string_list_find(txt, key);
    char *k = NULL, *v = NULL;
    if (!item || avahi_string_list_get_pair(item, &k, &v, NULL) < 0 || !v) {
        avahi_free(k);
        avahi_free(v);
        return NULL;
    }
    snprintf(buf, size, "%s", v);
    avahi_free(k);
    avahi_free(v);
    return buf;
}

static void s_resolved(AvahiServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
                       AvahiResolverEvent event, const char *name, const char *type,
                       const char *domain, const char *host, const AvahiAddress *a,
                       uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                       void *arg);

/* Starts resolving names that wait, newest first, as far as the bound on
   resolvers at once allows. */
static void s_resolve_next(mdns_t *self)
{
    for (seen_t *s = self->seen; s && self->resolving < RESOLVING_MAX; s = s->next) {
        if (!s->waiting)
            continue;
        s->waiting = 0;
        /* IPv4 addresses: they need no interface scope to be dialled. */
        s->resolver = avahi_service_resolver_new(self->client, s->iface, s->proto, s->name,
                                                 MDNS_TYPE, s->domain, AVAHI_PROTO_INET, 0,
                                                 s_resolved, self);
        if (s->resolver)
            self->resolving++;
        else
            log_warning("mDNS: cannot resolve '%s': %s", s->name,
                        avahi_strerror(avahi_client_errno(self->client)));
    }
}

static void s_resolved(AvahiServiceResolver *r, AvahiIfIndex iface, AvahiProtocol proto,
                       AvahiResolverEvent event, const char *name, const char *type,
                       const char *domain, const char *host, const AvahiAddress *a,
                       uint16_t port, AvahiStringList *txt, AvahiLookupResultFlags flags,
                       void *arg)
{
    (void) iface;
    (void) proto;
    (void) type;
    (void) domain;
    (void) host;
    (void) flags;
    mdns_t *self = arg;
    char id[64], version[16], nodename[256], cluster[64], addr[AVAHI_ADDRESS_STR_MAX];
    char ztxt[64], want[8], kid[ID_LEN + 1];
    uint8_t key[32];
    snprintf(want, sizeof want, "%d", PROTO_VERSION);
    if (event == AVAHI_RESOLVER_FOUND && a && a->proto == AVAHI_PROTO_INET &&
        s_txt(txt, "id", id, sizeof id) && strlen(id) == ID_LEN && strcmp(id, self->id) != 0 &&
        /* a record without a cluster is of the default one */
        strcmp(s_txt(txt, "cluster", cluster, sizeof cluster) ? cluster : "ipcnet",
               self->cluster) == 0) {
        if (!s_txt(txt, "v", version, sizeof version) || strcmp(version, want) != 0)
            log_warning("mDNS: node '%s' speaks protocol version %s, we speak %s: ignoring it",
                        name, s_txt(txt, "v", version, sizeof version) ? version : "?", want);
        else if (!s_txt(txt, "key", ztxt, sizeof ztxt) || strlen(ztxt) != 40 ||
                 !zmq_z85_decode(key, ztxt) ||
                 (proto_key_id(key, kid), strcmp(kid, id) != 0))
            /* Its id must be its key's: a record that says otherwise is
               not one to dial. */
            log_warning("mDNS: node '%s' has no valid key for its id: ignoring it", name);
        else {
            if (!s_txt(txt, "name", nodename, sizeof nodename))
                snprintf(nodename, sizeof nodename, "%s", name);
            avahi_address_snprint(addr, sizeof addr, a);
            char endpoint[128];
            snprintf(endpoint, sizeof endpoint, "tcp://%s:%u", addr, (unsigned) port);
            seen_t *s = s_seen(self, name, 0);
            if (s)
                memcpy(s->id, id, ID_LEN + 1);     /* checked: ID_LEN long */
            self->fn(self->arg, id, nodename, endpoint, key, 1);
        }
    }
    for (seen_t *s = self->seen; s; s = s->next)
        if (s->resolver == r) {
            s->resolver = NULL;
            self->resolving--;
            break;
        }
    avahi_service_resolver_free(r);
    s_resolve_next(self);
}

static void s_browsed(AvahiServiceBrowser *b, AvahiIfIndex iface, AvahiProtocol proto,
                      AvahiBrowserEvent event, const char *name, const char *type,
                      const char *domain, AvahiLookupResultFlags flags, void *arg)
{
    (void) type;        /* ours, browsed for */
    mdns_t *self = arg;
    if (event == AVAHI_BROWSER_FAILURE) {
        log_warning("mDNS: browsing failed: %s",
                    avahi_strerror(avahi_client_errno(avahi_service_browser_get_client(b))));
        return;
    }
    if (event == AVAHI_BROWSER_NEW) {
        if (flags & AVAHI_LOOKUP_RESULT_OUR_OWN)
            return;
        seen_t *s = s_seen(self, name, 1);
        if (!s)
            return;
        /* One resolution a name, through the interface it came first on. */
        if (s->instances++ > 0 || s->id[0] || s->resolver || s->waiting)
            return;
        char *d = strdup(domain);
        if (!d)
            return;
        free(s->domain);
        s->domain = d;
        s->iface = iface;
        s->proto = proto;
        s->waiting = 1;
        s_resolve_next(self);
    } else if (event == AVAHI_BROWSER_REMOVE) {
        seen_t **at = &self->seen;
        while (*at && strcmp((*at)->name, name) != 0)
            at = &(*at)->next;
        seen_t *s = *at;
        if (s && --s->instances <= 0) {
            if (s->id[0])
                self->fn(self->arg, s->id, name, NULL, NULL, 0);
            if (s->resolver)
                self->resolving--;
            *at = s->next;
            s_seen_free(s);
            self->nseen--;
            s_resolve_next(self);
        }
    }
}

/* --- the client ----------------------------------------------------------------- */

static void s_drop(mdns_t *self)
{
    loop_timer_cancel(self->loop, self->settle);
    self->settle = NULL;
    /* Freeing the client frees its groups, browsers and resolvers. */
    if (self->client)
        avahi_client_free(self->client);
    self->client = NULL;
    self->group = NULL;
    self->browser = NULL;
    s_forget_seen(self, 0);
}

static void s_retry(loop_t *loop, void *arg)
{
    (void) loop;
    mdns_t *self = arg;
    self->retry = NULL;
    s_client_new(self);
}

static void s_client_cb(AvahiClient *c, AvahiClientState state, void *arg)
{
    mdns_t *self = arg;
    self->client = c;
    switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
        if (self->said_absent)
            log_notice("mDNS: avahi-daemon is here; publishing and browsing");
        self->said_absent = 0;
        /* Browse first: nodes already there answer within ~100 ms, while
           our own record takes Avahi's probing (~750 ms) to appear. */
        if (!self->browser &&
            !(self->browser = avahi_service_browser_new(c, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC,
                                                        MDNS_TYPE, NULL, 0, s_browsed, self)))
            log_warning("mDNS: cannot browse: %s", avahi_strerror(avahi_client_errno(c)));
        s_register(self);
        break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
        /* The host name changed or collided: publish again once running. */
        if (self->group)
            avahi_entry_group_reset(self->group);
        break;
    case AVAHI_CLIENT_CONNECTING:
        if (!self->said_absent)
            log_notice("mDNS off: avahi-daemon is not running; local clients and static peers "
                       "work, and the node registers as soon as it starts");
        self->said_absent = 1;
        break;
    case AVAHI_CLIENT_FAILURE:
        if (avahi_client_errno(c) == AVAHI_ERR_DISCONNECTED) {
            log_notice("mDNS: avahi-daemon went away; waiting for it to come back");
            self->said_absent = 1;
            /* Not from inside its own callback: on the next turn. */
            if (!self->retry)
                self->retry = loop_timer_add(self->loop, 0, s_retry, self);
        } else
            log_warning("mDNS: %s", avahi_strerror(avahi_client_errno(c)));
        break;
    }
}

static void s_client_new(mdns_t *self)
{
    s_drop(self);
    int err = 0;
    AvahiClient *c = avahi_client_new(avahi_poll_get(self->poll), AVAHI_CLIENT_NO_FAIL,
                                      s_client_cb, self, &err);
    if (!c) {
        /* No system bus at all: try again later, quietly after once. */
        if (!self->said_absent)
            log_notice("mDNS off: %s; local clients and static peers work, retrying every 5 s",
                       avahi_strerror(err));
        self->said_absent = 1;
        self->retry = loop_timer_add(self->loop, 5000, s_retry, self);
        return;
    }
    self->client = c;
}

mdns_t *mdns_new(loop_t *loop, const char *name, const char *id, const char *key,
                 const char *cluster, int port, mdns_fn *fn, void *arg)
{
    mdns_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->port = port;
    self->rng = (uint32_t) zclock_mono() ^ (uint32_t) getpid();
    self->last_evict_log = INT64_MIN / 2;
    self->fn = fn;
    self->arg = arg;
    snprintf(self->id, sizeof self->id, "%s", id);
    snprintf(self->key, sizeof self->key, "%s", key);
    snprintf(self->name, sizeof self->name, "%s", name);
    snprintf(self->cluster, sizeof self->cluster, "%s", cluster);
    self->service = avahi_strdup(name);
    self->poll = avahi_poll_new(loop);
    if (!self->service || !self->poll) {
        mdns_destroy(&self);
        return NULL;
    }
    s_client_new(self);
    return self;
}

void mdns_destroy(mdns_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    mdns_t *self = *self_p;
    loop_timer_cancel(self->loop, self->retry);
    s_drop(self);
    avahi_poll_destroy(&self->poll);
    avahi_free(self->service);
    free(self);
    *self_p = NULL;
}
