/*  store.c: the shared key-value store: keys in a hash table, last writer
    wins by (hybrid logical clock, node id), writes replicated to up peers,
    digests exchanged when a peer comes up, an append-only log with crc32
    records and compaction, TTLs, ephemeral keys, watches, limits, policy.

    Every write, local or a peer's, goes through s_apply(): the record that
    is newer by (stamp, origin) replaces the one held, or is ignored. So the
    order records arrive in does not matter, and every node that has seen
    the same records holds the same value for each key (docs/store.md). */

#include "store.h"
#include "dict.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE            (256 * 1024)    /* a listing's part; a sync message's records */
#define MAX_SKEW_MS     300000          /* a record stamped further ahead is refused */
#define BATCH_SYNC_MS   50              /* --store-fsync batch: the longest wait */
#define COMPACT_MIN     (1u << 20)      /* log bytes before compaction is considered */
#define REC_HEAD        38              /* a record's bytes besides key and value */
#define LOG_HEAD        8               /* len:u32 crc:u32 before each record in the log */

typedef struct entry {
    struct entry *eph_prev, *eph_next;  /* the owner's keys (ephemeral, put here) */
    loop_timer_t *timer;                /* its TTL */
    uint64_t stamp;                     /* hybrid logical clock: the version */
    uint64_t owner;                     /* the local client of an ephemeral key, or 0 */
    uint32_t ttl, uid, size;
    uint16_t bucket;
    uint8_t flags, keylen;
    uint8_t origin[16];
    uint8_t data[];                     /* key, NUL, version:u64 BE, value */
} entry_t;

typedef struct {
    size_t keys, bytes;
} usage_t;

typedef struct {
    client_t *c;
    size_t len;
    char pattern[];
} watcher_t;

typedef struct {
    uint32_t count;
    uint64_t hash;
} bucket_t;

struct store {
    loop_t *loop;
    const node_config_t *cfg;
    policy_t *policy;
    dict_t *keys;               /* key -> entry_t (live, tombstones) */
    dict_t *uids;               /* uid:u32 -> usage_t, of live keys */
    dict_t *owners;             /* client id:u64 -> its first ephemeral entry_t */
    dict_t *speakers;           /* ids of peers that said HELLO with P_F_STORE */
    vec_t watchers;             /* watcher_t */
    vec_t peers;                /* up peers (references) */
    uint8_t id[16];
    char id_hex[33];
    uint64_t hlc;
    size_t live, bytes, remote_ephemeral;
    bucket_t digest[PROTO_STORE_BUCKETS];
    proto_buf_t out;
    loop_timer_t *sweep;
    /* the log */
    int fd;
    char path[sizeof ((node_config_t *) 0)->state_dir + 16];
    size_t log_bytes, log_live;
    int unsynced;
    loop_timer_t *sync_timer;
    proto_buf_t rec;
    /* counters */
    uint64_t puts, gets, dels, refused, fsyncs, sync_records, expired;
    char why[WIRE_NAME_MAX + 1];
};

/* --- small things ------------------------------------------------------------- */

static uint64_t s_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* A stamp for a write here: after every stamp made or seen. */
static uint64_t s_tick(store_t *self)
{
    uint64_t now = s_wall_ms() << 16;
    self->hlc = now > self->hlc ? now : self->hlc + 1;
    return self->hlc;
}

static uint64_t s_fnv(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t s_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static uint32_t s_crc32(const uint8_t *p, size_t len)
{
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xffffffffu;
}

static void s_put64(uint8_t *p, uint64_t v)
{
    wire_put32(p, (uint32_t) (v >> 32));
    wire_put32(p + 4, (uint32_t) v);
}

static uint64_t s_get64(const uint8_t *p)
{
    return (uint64_t) wire_get32(p) << 32 | wire_get32(p + 4);
}

/* Is (s1, o1) newer than (s2, o2)? The one rule that decides everywhere. */
static int s_newer(uint64_t s1, const uint8_t *o1, uint64_t s2, const uint8_t *o2)
{
    return s1 != s2 ? s1 > s2 : memcmp(o1, o2, 16) > 0;
}

static const char *s_key(const entry_t *e)
{
    return (const char *) e->data;
}

static uint8_t *s_versioned(entry_t *e)
{
    return e->data + e->keylen + 1;
}

static int s_deleted(const entry_t *e)
{
    return (e->flags & PROTO_STORE_DELETED) != 0;
}

/* When a record's TTL ends, in wall-clock ms; 0: never. */
static uint64_t s_deadline(uint64_t stamp, uint32_t ttl)
{
    return ttl ? (stamp >> 16) + ttl : 0;
}

static uint64_t s_digest_hash(const entry_t *e)
{
    return s_mix(s_fnv(s_key(e), e->keylen) ^ s_mix(e->stamp) ^ s_fnv(e->origin, 16) ^
                 (e->flags & PROTO_STORE_DELETED));
}

/* The bytes a record takes in the log (ephemeral ones are logged as
   deletions: they do not outlive the node). */
static size_t s_log_size(const entry_t *e)
{
    return LOG_HEAD + REC_HEAD + e->keylen +
           (e->flags & (PROTO_STORE_DELETED | PROTO_STORE_EPHEMERAL) ? 0 : e->size);
}

static proto_record_t s_record(const entry_t *e)
{
    return (proto_record_t) {
        .stamp = e->stamp, .origin = e->origin, .flags = e->flags, .ttl = e->ttl,
        .uid = e->uid, .key = s_key(e), .keylen = e->keylen,
        .value = e->data + e->keylen + 9, .size = e->size,
    };
}

static usage_t *s_usage(store_t *self, uint32_t uid, int make)
{
    usage_t *u = dict_get(self->uids, &uid, sizeof uid);
    if (!u && make && (u = calloc(1, sizeof *u)) && dict_put(self->uids, &uid, sizeof uid, u) < 0) {
        free(u);
        u = NULL;
    }
    return u;
}

/* --- watchers ------------------------------------------------------------------- */

static int s_may(const store_t *self, const client_t *c, int action, const char *name, size_t len,
                 const char **ret_rule)
{
    if (!policy_has(self->policy, action))
        return 1;
    policy_who_t who = client_who(c);
    return policy_check(self->policy, &who, action, name, len, ret_rule) != 0;
}

static void s_event(store_t *self, client_t *c, entry_t *e)
{
    char origin[33];
    proto_hex(e->origin, 16, origin);
    (void) self;
    client_send_control(c, WIRE_KEY_EVENT, 0, 0, s_deleted(e) ? WIRE_KEV_DEL : WIRE_KEV_PUT,
                        s_key(e), e->keylen, origin, 32, s_versioned(e),
                        s_deleted(e) ? 8 : 8 + (size_t) e->size);
}

static void s_notify(store_t *self, entry_t *e)
{
    for (size_t i = 0; i < self->watchers.size; i++) {
        watcher_t *w = self->watchers.items[i];
        if (wire_match(w->pattern, w->len, s_key(e), e->keylen) &&
            s_may(self, w->c, POLICY_GET, s_key(e), e->keylen, NULL))
            s_event(self, w->c, e);
    }
}

/* --- the table --------------------------------------------------------------------- */

static void s_expire(loop_t *loop, void *arg);

static void s_owner_link(store_t *self, entry_t *e)
{
    entry_t *head = dict_get(self->owners, &e->owner, sizeof e->owner);
    e->eph_prev = NULL;
    e->eph_next = head;
    if (head)
        head->eph_prev = e;
    if (dict_put(self->owners, &e->owner, sizeof e->owner, e) < 0) {
        if (head)
            head->eph_prev = NULL;
        e->owner = 0;       /* out of memory: it lives until deleted */
    }
}

static void s_owner_unlink(store_t *self, entry_t *e)
{
    if (!e->owner)
        return;
    if (e->eph_next)
        e->eph_next->eph_prev = e->eph_prev;
    if (e->eph_prev)
        e->eph_prev->eph_next = e->eph_next;
    else if (e->eph_next)
        dict_put(self->owners, &e->owner, sizeof e->owner, e->eph_next);    /* no growth */
    else
        dict_del(self->owners, &e->owner, sizeof e->owner);
    e->owner = 0;
}

/* Counts e in (sign 1) or out (-1) of the digest, the usage and the log's
   live bytes. */
static void s_count(store_t *self, entry_t *e, int sign)
{
    bucket_t *b = &self->digest[e->bucket];
    b->hash ^= s_digest_hash(e);
    b->count += (uint32_t) sign;
    self->log_live += sign > 0 ? s_log_size(e) : -s_log_size(e);
    if ((e->flags & PROTO_STORE_EPHEMERAL) && memcmp(e->origin, self->id, 16) != 0)
        self->remote_ephemeral += (size_t) sign;
    if (s_deleted(e))
        return;
    size_t bytes = e->keylen + (size_t) e->size;
    self->live += (size_t) sign;
    self->bytes += sign > 0 ? bytes : -bytes;
    usage_t *u = s_usage(self, e->uid, sign > 0);
    if (u) {
        u->keys += (size_t) sign;
        u->bytes += sign > 0 ? bytes : -bytes;
        if (u->keys == 0) {
            dict_del(self->uids, &e->uid, sizeof e->uid);
            free(u);
        }
    }
}

static void s_entry_free(store_t *self, entry_t *e)
{
    s_owner_unlink(self, e);
    loop_timer_cancel(self->loop, e->timer);
    free(e);
}

/* Removes e here only (expired, its ephemeral node lost, a tombstone
   collected): no record of it goes anywhere. notify: watchers hear a
   deletion. */
static void s_remove(store_t *self, entry_t *e, int notify)
{
    dict_del(self->keys, s_key(e), e->keylen);
    s_count(self, e, -1);
    if (notify && !s_deleted(e)) {
        e->flags |= PROTO_STORE_DELETED;
        s_notify(self, e);
    }
    s_entry_free(self, e);
}

/* --- the log ------------------------------------------------------------------------ */

static void s_log_encode(proto_buf_t *b, const entry_t *e)
{
    proto_record_t r = s_record(e);
    if (r.flags & PROTO_STORE_EPHEMERAL) {
        r.flags = PROTO_STORE_DELETED;
        r.size = 0;
        r.ttl = 0;
    }
    size_t at = b->len;
    proto_u32(b, 0);
    proto_u32(b, 0);
    proto_record_put(b, &r);
    if (b->failed)
        return;
    uint32_t len = (uint32_t) (b->len - at - LOG_HEAD);
    wire_put32(b->data + at, len);
    wire_put32(b->data + at + 4, s_crc32(b->data + at + LOG_HEAD, len));
}

static int s_write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t) n;
    }
    return 0;
}

static void s_sync_due(loop_t *loop, void *arg)
{
    (void) loop;
    store_t *self = arg;
    self->sync_timer = NULL;
    if (self->fd >= 0 && self->unsynced && fdatasync(self->fd) == 0)
        self->fsyncs++;
    self->unsynced = 0;
}

static void s_compact_each(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    s_log_encode(arg, value);
}

/* Writes the live records to a new log and puts it in place of the old. */
static void s_compact(store_t *self)
{
    char tmp[sizeof self->path + 8];
    snprintf(tmp, sizeof tmp, "%s.new", self->path);
    proto_buf_t b = { 0 };
    dict_each(self->keys, s_compact_each, &b);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (b.failed || fd < 0 || s_write_all(fd, b.data, b.len) < 0 || fdatasync(fd) < 0 ||
        rename(tmp, self->path) < 0) {
        log_warning("store: cannot compact %s: %s; the log goes on growing", self->path,
                    b.failed ? "out of memory" : strerror(errno));
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        proto_free(&b);
        return;
    }
    close(self->fd);
    self->fd = fd;
    /* O_APPEND is not needed: only we write, at the end. */
    lseek(self->fd, 0, SEEK_END);
    log_info("store: log compacted from %zu to %zu bytes", self->log_bytes, b.len);
    self->log_bytes = b.len;
    self->unsynced = 0;
    proto_free(&b);
}

/* Appends e's record; with --store-fsync always, on disk before this
   returns. */
static void s_log_append(store_t *self, const entry_t *e)
{
    if (self->fd < 0)
        return;
    self->rec.len = 0;
    self->rec.failed = 0;
    s_log_encode(&self->rec, e);
    if (self->rec.failed || s_write_all(self->fd, self->rec.data, self->rec.len) < 0) {
        log_error("store: cannot write %s: %s", self->path, strerror(errno));
        return;
    }
    self->log_bytes += self->rec.len;
    if (self->cfg->store_fsync == NODE_FSYNC_ALWAYS) {
        if (fdatasync(self->fd) == 0)
            self->fsyncs++;
    } else if (self->cfg->store_fsync == NODE_FSYNC_BATCH) {
        self->unsynced = 1;
        if (!self->sync_timer)
            self->sync_timer = loop_timer_add(self->loop, BATCH_SYNC_MS, s_sync_due, self);
    }
    if (self->log_bytes > COMPACT_MIN && self->log_bytes > 2 * self->log_live)
        s_compact(self);
}

/* --- applying a record ----------------------------------------------------------------- */

enum { FROM_CLIENT = 0, FROM_PEER = 1, FROM_LOG = 2 };

/* Applies r if it is newer than what is held. Returns 1 (applied), 0
   (older, expired: ignored) or -ENOBUFS / -ENOMEM (a node limit: *why). */
static int s_apply(store_t *self, const proto_record_t *r, uint64_t owner, int from,
                   entry_t **ret)
{
    const node_config_t *cfg = self->cfg;
    entry_t *old = dict_get(self->keys, r->key, r->keylen);
    if (old && !s_newer(r->stamp, r->origin, old->stamp, old->origin))
        return 0;
    uint64_t deadline = s_deadline(r->stamp, r->ttl);
    uint64_t now = s_wall_ms();
    /* A deletion older than the tombstones kept is collected already
       here, or about to be: not taken again from a peer or the log. */
    if ((r->flags & PROTO_STORE_DELETED) && from != FROM_CLIENT &&
        (r->stamp >> 16) + cfg->store_tombstone_ms < now)
        deadline = now;
    if (deadline && deadline <= now) {
        if (old && !s_deleted(old))
            s_remove(self, old, from != FROM_LOG);
        return 0;
    }
    int deleted = (r->flags & PROTO_STORE_DELETED) != 0;
    size_t bytes = deleted ? 0 : r->keylen + r->size;
    size_t old_bytes = old && !s_deleted(old) ? old->keylen + (size_t) old->size : 0;
    if (!old && dict_size(self->keys) >= cfg->store_max_keys) {
        snprintf(self->why, sizeof self->why, "the node holds %zu keys (--store-max-keys)",
                 dict_size(self->keys));
        return -ENOBUFS;
    }
    if (bytes > old_bytes && self->bytes - old_bytes + bytes > cfg->store_max_bytes) {
        snprintf(self->why, sizeof self->why, "the node holds %zu bytes of keys and values "
                 "(--store-max-bytes)", self->bytes);
        return -ENOBUFS;
    }
    entry_t *e = malloc(sizeof *e + r->keylen + 1 + 8 + r->size);
    if (!e) {
        snprintf(self->why, sizeof self->why, "out of memory");
        return -ENOMEM;
    }
    *e = (entry_t) {
        .stamp = r->stamp, .ttl = r->ttl, .uid = r->uid, .size = deleted ? 0 : (uint32_t) r->size,
        .bucket = (uint16_t) (s_fnv(r->key, r->keylen) % PROTO_STORE_BUCKETS),
        .flags = r->flags, .keylen = (uint8_t) r->keylen,
    };
    memcpy(e->origin, r->origin, 16);
    memcpy(e->data, r->key, r->keylen);
    e->data[r->keylen] = 0;
    s_put64(s_versioned(e), r->stamp);
    if (e->size)
        memcpy(s_versioned(e) + 8, r->value, e->size);
    if (dict_put(self->keys, r->key, r->keylen, e) < 0) {
        free(e);
        snprintf(self->why, sizeof self->why, "out of memory");
        return -ENOMEM;
    }
    if (old) {
        s_count(self, old, -1);
        s_entry_free(self, old);
    }
    s_count(self, e, 1);
    if (owner && (e->flags & PROTO_STORE_EPHEMERAL)) {
        e->owner = owner;
        s_owner_link(self, e);
    }
    if (deadline)
        e->timer = loop_timer_add(self->loop, (int64_t) (deadline - now), s_expire, e);
    if (e->stamp > self->hlc)
        self->hlc = e->stamp;
    if (from != FROM_LOG) {
        s_log_append(self, e);
        s_notify(self, e);
    }
    if (ret)
        *ret = e;
    return 1;
}

/* The TTL of an entry ran out: it goes here; every node does the same at
   the same wall-clock time, so nothing is sent. The timer's argument is
   the entry, and a node has one store: it is found here, rather than by a
   pointer in every entry (8 bytes a key). */
static store_t *s_expiring;

static void s_expire(loop_t *loop, void *arg)
{
    (void) loop;
    entry_t *e = arg;
    e->timer = NULL;
    s_expiring->expired++;
    s_remove(s_expiring, e, 1);
}

/* --- replication ---------------------------------------------------------------------- */

static void s_send_all(store_t *self, proto_buf_t *b)
{
    for (size_t i = 0; i < self->peers.size; i++)
        peer_send_encoded(self->peers.items[i], b);
}

static void s_broadcast(store_t *self, const entry_t *e)
{
    if (self->peers.size == 0)
        return;
    proto_list_begin(&self->out, P_STORE_RECORDS);
    proto_record_t r = s_record(e);
    proto_record_add(&self->out, &r);
    s_send_all(self, &self->out);
}

/* Is id (16 bytes) an up peer's? */
static int s_peer_up(store_t *self, const uint8_t *id)
{
    char hex[33];
    proto_hex(id, 16, hex);
    for (size_t i = 0; i < self->peers.size; i++)
        if (strcmp(peer_id(self->peers.items[i]), hex) == 0)
            return 1;
    return 0;
}

void store_peer_hello(store_t *self, peer_t *p, int speaks)
{
    if (speaks)
        dict_put(self->speakers, peer_id(p), strlen(peer_id(p)), self);
    else
        dict_del(self->speakers, peer_id(p), strlen(peer_id(p)));
}

void store_peer_up(store_t *self, peer_t *p)
{
    if (!dict_get(self->speakers, peer_id(p), strlen(peer_id(p))) ||
        vec_has(&self->peers, p) || vec_push(&self->peers, peer_ref(p)) < 0)
        return;
    proto_begin(&self->out, P_STORE_DIGEST, 0, 0);
    proto_u16(&self->out, PROTO_STORE_BUCKETS);
    for (size_t i = 0; i < PROTO_STORE_BUCKETS; i++) {
        proto_u32(&self->out, self->digest[i].count);
        proto_u64(&self->out, self->digest[i].hash);
    }
    peer_send_encoded(p, &self->out);
}

typedef struct {
    store_t *self;
    peer_t *peer;
    const uint8_t *differ;      /* a flag per bucket */
    const uint8_t *origin;      /* ephemeral keys of this node (16 bytes) */
    vec_t *found;
} walk_t;

static void s_flush_records(store_t *self, peer_t *p)
{
    if (proto_list_count(&self->out) > 0)
        peer_send_encoded(p, &self->out);
    proto_list_begin(&self->out, P_STORE_RECORDS);
}

static void s_send_differing(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    walk_t *w = arg;
    entry_t *e = value;
    if (!w->differ[e->bucket])
        return;
    /* A message stays within a page, or holds one record alone: every
       record fits a peer's largest frame (--store-max-value is at most
       --max-message). */
    size_t bytes = REC_HEAD + e->keylen + (size_t) e->size;
    if (proto_list_count(&w->self->out) > 0 &&
        (w->self->out.len + bytes > PAGE || proto_list_count(&w->self->out) >= 65535))
        s_flush_records(w->self, w->peer);
    proto_record_t r = s_record(e);
    proto_record_add(&w->self->out, &r);
    w->self->sync_records++;
}

static void s_on_digest(store_t *self, peer_t *p, const proto_msg_t *m)
{
    uint8_t differ[PROTO_STORE_BUCKETS];
    const uint8_t *at = m->list;
    size_t n = 0;
    for (size_t i = 0; i < PROTO_STORE_BUCKETS; i++, at += 12) {
        differ[i] = wire_get32(at) != self->digest[i].count ||
                    s_get64(at + 4) != self->digest[i].hash;
        n += differ[i];
    }
    if (n == 0)
        return;
    /* Ours of each bucket that differs go over; the peer does the same
       with ours, and each keeps the newer of every key. */
    walk_t w = { self, p, differ, NULL, NULL };
    proto_list_begin(&self->out, P_STORE_RECORDS);
    dict_each(self->keys, s_send_differing, &w);
    s_flush_records(self, p);
}

static void s_on_records(store_t *self, peer_t *p, const proto_msg_t *m)
{
    const uint8_t *at = m->list;
    uint64_t limit = (s_wall_ms() + MAX_SKEW_MS) << 16;
    for (unsigned i = 0; i < m->count; i++) {
        proto_record_t r;
        proto_record_next(&at, &r);
        if (r.stamp > limit) {
            self->refused++;
            log_warning("store: %s sent %.*s stamped more than %d s ahead; refused",
                        peer_name(p), (int) r.keylen, r.key, MAX_SKEW_MS / 1000);
            continue;
        }
        /* An ephemeral key lives while its node is up: not ours from an
           earlier life, nor one of a node we do not see. */
        char origin[33];
        proto_hex(r.origin, 16, origin);
        if ((r.flags & PROTO_STORE_EPHEMERAL) && !(r.flags & PROTO_STORE_DELETED) &&
            strcmp(origin, peer_id(p)) != 0 && !s_peer_up(self, r.origin))
            continue;
        if (s_apply(self, &r, 0, FROM_PEER, NULL) < 0) {
            self->refused++;
            log_warning("store: %.*s from %s refused: %s", (int) r.keylen, r.key,
                        peer_name(p), self->why);
        }
    }
}

void store_peer_message(store_t *self, peer_t *p, const proto_msg_t *m)
{
    /* From a peer that greeted us, up here or about to be: its digest may
       come before our side of the handshake is done, and must be answered
       all the same, or the records we hold would never reach it. */
    if (m->type == P_STORE_DIGEST)
        s_on_digest(self, p, m);
    else if (m->type == P_STORE_RECORDS)
        s_on_records(self, p, m);
}

static void s_collect_ephemeral(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    walk_t *w = arg;
    entry_t *e = value;
    if ((e->flags & PROTO_STORE_EPHEMERAL) && memcmp(e->origin, w->origin, 16) == 0)
        vec_push(w->found, e);
}

void store_peer_down(store_t *self, peer_t *p)
{
    /* Also a peer lost before it was up here: it may have told us of its
       ephemeral keys in the meantime. */
    int had = vec_remove(&self->peers, p);
    dict_del(self->speakers, peer_id(p), strlen(peer_id(p)));
    uint8_t id[16];
    if (self->remote_ephemeral > 0 && proto_unhex(peer_id(p), 16, id) == 0) {
        vec_t found = { 0 };
        walk_t w = { self, p, NULL, id, &found };
        dict_each(self->keys, s_collect_ephemeral, &w);
        for (size_t i = 0; i < found.size; i++)
            s_remove(self, found.items[i], 1);
        if (found.size)
            log_info("store: %zu ephemeral keys of %s gone with it", found.size, peer_name(p));
        vec_free(&found);
    }
    if (had)
        peer_unref(&p);
}

/* --- tombstones ------------------------------------------------------------------------- */

typedef struct {
    uint64_t before;
    vec_t found;
} sweep_t;

static void s_collect_dead(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    sweep_t *s = arg;
    entry_t *e = value;
    if (s_deleted(e) && (e->stamp >> 16) < s->before)
        vec_push(&s->found, e);
}

static void s_sweep(loop_t *loop, void *arg)
{
    store_t *self = arg;
    sweep_t s = { s_wall_ms() - self->cfg->store_tombstone_ms, { 0 } };
    dict_each(self->keys, s_collect_dead, &s);
    for (size_t i = 0; i < s.found.size; i++)
        s_remove(self, s.found.items[i], 0);
    vec_free(&s.found);
    unsigned every = self->cfg->store_tombstone_ms / 4;
    self->sweep = loop_timer_add(loop, every < 1000 ? 1000 : every > 60000 ? 60000 : every,
                                 s_sweep, self);
}

/* --- the client's commands -------------------------------------------------------------- */

/* The largest value: --store-max-value, within --max-message (a record
   must fit the frames peers take). */
static size_t s_max_value(const node_config_t *cfg)
{
    return cfg->store_max_value < cfg->max_message ? cfg->store_max_value : cfg->max_message;
}

int store_is_command(uint8_t type)
{
    return type >= WIRE_PUT && type <= WIRE_UNWATCH_KEYS;
}

static entry_t *s_live(store_t *self, const char *key, size_t len)
{
    entry_t *e = dict_get(self->keys, key, len);
    return e && !s_deleted(e) ? e : NULL;
}

/* A local write (PUT or DEL) after its checks: stamped, applied, logged,
   sent to every up peer. */
static int s_write(store_t *self, client_t *c, const wire_frame_t *f, int deleted,
                   const uint8_t *value, size_t size, uint64_t *ret_version)
{
    entry_t *old = s_live(self, f->s1, f->s1len);
    int ephemeral = !deleted && (f->flags & WIRE_F_EPHEMERAL);
    uint32_t uid = (uint32_t) c->cred.uid;
    if (!deleted && uid != 0) {
        usage_t *u = s_usage(self, uid, 0);
        size_t keys = u ? u->keys : 0, bytes = u ? u->bytes : 0;
        int same = old && old->uid == uid;
        if (!same && keys + 1 > self->cfg->store_uid_keys) {
            snprintf(self->why, sizeof self->why, "uid %u holds %zu keys "
                     "(--store-max-keys-per-uid)", uid, keys);
            return -ENOBUFS;
        }
        size_t mine = same ? old->keylen + (size_t) old->size : 0;
        if (bytes - mine + f->s1len + size > self->cfg->store_uid_bytes) {
            snprintf(self->why, sizeof self->why, "uid %u holds %zu bytes "
                     "(--store-max-bytes-per-uid)", uid, bytes);
            return -ENOBUFS;
        }
    }
    proto_record_t r = {
        .stamp = s_tick(self), .origin = self->id,
        .flags = deleted ? PROTO_STORE_DELETED : ephemeral ? PROTO_STORE_EPHEMERAL : 0,
        .ttl = deleted ? 0 : f->aux, .uid = uid, .key = f->s1, .keylen = f->s1len,
        .value = value, .size = deleted ? 0 : size,
    };
    entry_t *e = NULL;
    int rc = s_apply(self, &r, ephemeral ? c->id : 0, FROM_CLIENT, &e);
    if (rc < 0)
        return rc;
    if (rc == 1)
        s_broadcast(self, e);
    *ret_version = r.stamp;
    return 0;
}

static void s_put(store_t *self, client_t *c, const wire_frame_t *f, int deleted)
{
    const char *rule = NULL;
    int rc = 0;
    const char *why = NULL;
    uint64_t version = 0;
    if (wire_check_name(f->s1, f->s1len) < 0) {
        rc = -EINVAL;
        why = "bad key";
    } else if ((!deleted && f->size < 8) || (deleted && (f->flags & WIRE_F_IF) && f->size < 8)) {
        rc = -EBADMSG;
        why = "no version in the frame";
    } else if (!deleted && f->size - 8 > s_max_value(self->cfg)) {
        rc = -EMSGSIZE;
        snprintf(self->why, sizeof self->why, "value of %zu bytes, more than --store-max-value "
                 "(%zu)", f->size - 8, s_max_value(self->cfg));
        why = self->why;
    } else if (!s_may(self, c, POLICY_PUT, f->s1, f->s1len, &rule)) {
        policy_who_t who = client_who(c);
        policy_log_denial(&who, deleted ? "delete" : "put", f->s1, f->s1len, rule);
        rc = -EACCES;
        why = policy_denial(self->why, sizeof self->why, rule);
    } else {
        entry_t *old = s_live(self, f->s1, f->s1len);
        uint64_t have = old ? old->stamp : 0;
        if ((f->flags & WIRE_F_IF) && s_get64(f->data) != have) {
            rc = -ESTALE;
            snprintf(self->why, sizeof self->why, "the key's version is %" PRIu64, have);
            why = self->why;
        } else if (deleted && !old) {
            rc = -ENOENT;
            why = "no such key";
        } else {
            rc = s_write(self, c, f, deleted, deleted ? NULL : f->data + 8,
                         deleted ? 0 : f->size - 8, &version);
            why = self->why;
        }
    }
    if (rc < 0) {
        client_send_error(c, f, -rc, f->s1, f->s1len, why);
        return;
    }
    deleted ? self->dels++ : self->puts++;
    uint8_t v[8];
    s_put64(v, version);
    client_send_ok(c, f, v, sizeof v);
}

static void s_get(store_t *self, client_t *c, const wire_frame_t *f)
{
    const char *rule = NULL;
    self->gets++;
    if (!s_may(self, c, POLICY_GET, f->s1, f->s1len, &rule)) {
        policy_who_t who = client_who(c);
        policy_log_denial(&who, "get", f->s1, f->s1len, rule);
        client_send_error(c, f, EACCES, f->s1, f->s1len,
                          policy_denial(self->why, sizeof self->why, rule));
        return;
    }
    entry_t *e = s_live(self, f->s1, f->s1len);
    if (!e)
        client_send_error(c, f, ENOENT, f->s1, f->s1len, "no such key");
    else
        client_send_ok(c, f, s_versioned(e), 8 + (size_t) e->size);
}

/* A watch's snapshot: an event for each live key of its pattern. */
typedef struct {
    store_t *self;
    client_t *c;
    const wire_frame_t *f;
} list_t;

static void s_list_each(const void *key, size_t len, void *value, void *arg)
{
    list_t *l = arg;
    entry_t *e = value;
    if (!s_deleted(e) && wire_match(l->f->s1, l->f->s1len, key, len) &&
        s_may(l->self, l->c, POLICY_GET, key, len, NULL))
        s_event(l->self, l->c, e);
}

typedef struct {
    const store_t *self;
    const client_t *c;
    const char *pattern;
    size_t plen;
    text_t *out;
} scan_t;

static void s_scan_each(const void *key, size_t len, void *value, void *arg)
{
    scan_t *s = arg;
    entry_t *e = value;
    if (s_deleted(e) || !wire_match(s->pattern, s->plen, key, len) ||
        !s_may(s->self, s->c, POLICY_GET, key, len, NULL))
        return;
    text_printf(s->out, "%s\t%" PRIu64 "\t%" PRIu32 "\n", s_key(e), e->stamp, e->size);
}

size_t store_scan_keys(const store_t *self, size_t cursor, const client_t *c,
                       const char *pattern, size_t plen, text_t *out)
{
    scan_t s = { self, c, pattern, plen, out };
    return dict_scan(self->keys, cursor, s_scan_each, &s);
}

static int s_watch(store_t *self, client_t *c, const wire_frame_t *f, int on)
{
    size_t mine = 0;
    for (size_t i = 0; i < self->watchers.size; i++) {
        watcher_t *w = self->watchers.items[i];
        if (w->c != c)
            continue;
        mine++;
        if (w->len == f->s1len && memcmp(w->pattern, f->s1, f->s1len) == 0) {
            if (on)
                return -EEXIST;
            vec_remove(&self->watchers, w);
            free(w);
            return 0;
        }
    }
    if (!on)
        return -ENOENT;
    if (wire_check_pattern(f->s1, f->s1len) < 0)
        return -EINVAL;
    const char *rule = NULL;
    if (!s_may(self, c, POLICY_WATCH_KEYS, f->s1, f->s1len, &rule)) {
        policy_who_t who = client_who(c);
        policy_log_denial(&who, "watch-keys", f->s1, f->s1len, rule);
        policy_denial(self->why, sizeof self->why, rule);
        return -EACCES;
    }
    if (mine >= self->cfg->max_watches) {
        snprintf(self->why, sizeof self->why, "%zu key watches (--max-watches)", mine);
        return -ENOBUFS;
    }
    watcher_t *w = malloc(sizeof *w + f->s1len);
    if (!w || vec_push(&self->watchers, w) < 0) {
        free(w);
        return -ENOMEM;
    }
    w->c = c;
    w->len = f->s1len;
    memcpy(w->pattern, f->s1, f->s1len);
    /* Answered, then the keys there now, then the changes. */
    client_send_ok(c, f, NULL, 0);
    list_t l = { self, c, f };
    dict_each(self->keys, s_list_each, &l);
    return 1;
}

void store_command(store_t *self, client_t *c, const wire_frame_t *f)
{
    int rc;
    self->why[0] = 0;
    switch (f->type) {
    case WIRE_PUT:
        s_put(self, c, f, 0);
        return;
    case WIRE_DEL:
        s_put(self, c, f, 1);
        return;
    case WIRE_GET:
        s_get(self, c, f);
        return;
    case WIRE_WATCH_KEYS:
    case WIRE_UNWATCH_KEYS:
        rc = s_watch(self, c, f, f->type == WIRE_WATCH_KEYS);
        if (rc == 0)
            client_send_ok(c, f, NULL, 0);
        else if (rc < 0)
            client_send_error(c, f, -rc, f->s1, f->s1len,
                              self->why[0] ? self->why : rc == -EEXIST ? "already watched"
                              : rc == -ENOENT ? "not watched" : rc == -EINVAL ? "bad pattern"
                              : "failed");
        return;
    default:
        client_send_error(c, f, EBADMSG, NULL, 0, "not a store command");
    }
}

void store_client_gone(store_t *self, client_t *c)
{
    for (size_t i = self->watchers.size; i-- > 0;) {
        watcher_t *w = self->watchers.items[i];
        if (w->c == c) {
            vec_remove(&self->watchers, w);
            free(w);
        }
    }
    /* Its ephemeral keys are deleted as it would delete them: everywhere. */
    entry_t *e;
    while ((e = dict_get(self->owners, &c->id, sizeof c->id))) {
        s_owner_unlink(self, e);
        proto_record_t r = {
            .stamp = s_tick(self), .origin = self->id, .flags = PROTO_STORE_DELETED,
            .uid = e->uid, .key = s_key(e), .keylen = e->keylen,
        };
        char key[WIRE_NAME_MAX + 1];
        memcpy(key, r.key, r.keylen);
        r.key = key;
        entry_t *t = NULL;
        if (s_apply(self, &r, 0, FROM_CLIENT, &t) == 1)
            s_broadcast(self, t);
    }
}

/* --- start and end ---------------------------------------------------------------------- */

/* A record as the log holds it: checked as a peer's would be. */
static int s_parse(const uint8_t *p, size_t len, proto_record_t *r)
{
    if (len < REC_HEAD)
        return -1;
    size_t klen = p[33];
    if (len < REC_HEAD + klen || wire_check_name((const char *) p + 34, klen) < 0)
        return -1;
    uint32_t size = wire_get32(p + 34 + klen);
    if (len != REC_HEAD + klen + size || (p[24] & ~(PROTO_STORE_DELETED | PROTO_STORE_EPHEMERAL)))
        return -1;
    const uint8_t *at = p;
    proto_record_next(&at, r);
    return 0;
}

static void s_load(store_t *self)
{
    struct stat st;
    if (fstat(self->fd, &st) < 0 || st.st_size == 0)
        return;
    size_t size = (size_t) st.st_size;
    uint8_t *data = malloc(size);
    size_t got = 0;
    while (data && got < size) {
        ssize_t n = pread(self->fd, data + got, size - got, (off_t) got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t) n;
    }
    if (!data || got < size) {
        log_error("store: cannot read %s; starting without its keys", self->path);
        free(data);
        return;
    }
    size_t at = 0, records = 0, refused = 0;
    while (size - at >= LOG_HEAD) {
        uint32_t len = wire_get32(data + at), crc = wire_get32(data + at + 4);
        proto_record_t r;
        if (len > size - at - LOG_HEAD || s_crc32(data + at + LOG_HEAD, len) != crc ||
            s_parse(data + at + LOG_HEAD, len, &r) < 0)
            break;
        if (s_apply(self, &r, 0, FROM_LOG, NULL) < 0)
            refused++;
        records++;
        at += LOG_HEAD + len;
    }
    if (at < size) {
        log_warning("store: %s: %zu bytes at offset %zu are not a whole record (torn by a "
                    "crash?): dropped", self->path, size - at, at);
        if (ftruncate(self->fd, (off_t) at) < 0)
            log_warning("store: cannot truncate %s: %s", self->path, strerror(errno));
    }
    if (refused)
        log_warning("store: %zu records of %s over the limits: not loaded", refused, self->path);
    self->log_bytes = at;
    log_info("store: %zu records read from %s, %zu keys", records, self->path, self->live);
    free(data);
}

store_t *store_new(loop_t *loop, const node_config_t *cfg, policy_t *policy, const char *id_hex)
{
    store_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->cfg = cfg;
    self->policy = policy;
    self->fd = -1;
    snprintf(self->id_hex, sizeof self->id_hex, "%s", id_hex);
    if (proto_unhex(id_hex, 16, self->id) < 0 || !(self->keys = dict_new()) ||
        !(self->uids = dict_new()) || !(self->owners = dict_new()) ||
        !(self->speakers = dict_new())) {
        store_destroy(&self);
        return NULL;
    }
    s_expiring = self;
    if (cfg->state_dir[0] && cfg->store_fsync != NODE_FSYNC_NONE) {
        snprintf(self->path, sizeof self->path, "%s/store.log", cfg->state_dir);
        self->fd = open(self->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (self->fd < 0)
            log_warning("store: cannot open %s: %s; keys will not outlive the node",
                        self->path, strerror(errno));
        else {
            /* The user the node becomes writes it from now on. */
            if (cfg->drop && fchown(self->fd, cfg->run_uid, cfg->run_gid) < 0)
                log_warning("store: cannot give %s to uid %u: %s", self->path,
                            (unsigned) cfg->run_uid, strerror(errno));
            s_load(self);
            lseek(self->fd, 0, SEEK_END);
        }
    }
    s_sweep(loop, self);
    return self;
}

static void s_free_each(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    (void) arg;
    free(value);
}

static void s_free_entry_each(const void *key, size_t len, void *value, void *arg)
{
    (void) key;
    (void) len;
    store_t *self = arg;
    entry_t *e = value;
    loop_timer_cancel(self->loop, e->timer);
    free(e);
}

void store_destroy(store_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    store_t *self = *self_p;
    if (self->keys) {
        dict_each(self->keys, s_free_entry_each, self);
        dict_destroy(&self->keys);
    }
    if (self->uids) {
        dict_each(self->uids, s_free_each, NULL);
        dict_destroy(&self->uids);
    }
    dict_destroy(&self->owners);
    dict_destroy(&self->speakers);
    for (size_t i = 0; i < self->watchers.size; i++)
        free(self->watchers.items[i]);
    vec_free(&self->watchers);
    for (size_t i = 0; i < self->peers.size; i++) {
        peer_t *p = self->peers.items[i];
        peer_unref(&p);
    }
    vec_free(&self->peers);
    loop_timer_cancel(self->loop, self->sweep);
    loop_timer_cancel(self->loop, self->sync_timer);
    if (self->fd >= 0) {
        if (self->unsynced)
            fdatasync(self->fd);
        close(self->fd);
    }
    proto_free(&self->out);
    proto_free(&self->rec);
    if (s_expiring == self)
        s_expiring = NULL;
    free(self);
    *self_p = NULL;
}

void store_stats(const store_t *self, text_t *out)
{
    text_printf(out, "store_keys\t%zu\nstore_entries\t%zu\nstore_bytes\t%zu\n"
                "store_puts\t%" PRIu64 "\nstore_gets\t%" PRIu64 "\nstore_dels\t%" PRIu64 "\n"
                "store_refused\t%" PRIu64 "\nstore_fsyncs\t%" PRIu64 "\nstore_sync_records\t%"
                PRIu64 "\nstore_expired\t%" PRIu64 "\nstore_log_bytes\t%zu\n", self->live,
                dict_size(self->keys), self->bytes, self->puts, self->gets, self->dels,
                self->refused, self->fsyncs, self->sync_records, self->expired, self->log_bytes);
}
