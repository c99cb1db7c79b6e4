/*  candidates.c: nodes heard of and not met; see candidates.h. */

#include "candidates.h"
#include "log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define FAILED_MAX      256         /* nodes forgotten so, not dialled again ... */
#define FAILED_MS       300000      /* ... for this long */
#define TELL_EVERY_MS   60000

struct candidates {
    candidate_t pool[CANDIDATES_MAX];
    size_t count;
    struct { char id[PROTO_ID_LEN + 1]; int64_t until; } failed[FAILED_MAX];
    size_t failed_next;
    double tokens, cap;
    int64_t refilled;
    unsigned dropped;           /* since last said */
    int64_t told;
    uint64_t rng;
};

static size_t s_random(candidates_t *self, size_t n)
{
    /* xorshift64*: enough to choose among waiting candidates. */
    self->rng ^= self->rng >> 12;
    self->rng ^= self->rng << 25;
    self->rng ^= self->rng >> 27;
    return (size_t) ((self->rng * 2685821657736338717ull) >> 33) % n;
}

candidates_t *candidates_new(unsigned rate_cap, int64_t now)
{
    candidates_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->cap = rate_cap;
    self->tokens = rate_cap;
    self->refilled = now;
    self->told = INT64_MIN / 2;
    if (getrandom(&self->rng, sizeof self->rng, 0) != sizeof self->rng || !self->rng)
        self->rng = (uint64_t) now | 1;
    return self;
}

void candidates_destroy(candidates_t **self_p)
{
    if (self_p && *self_p) {
        free(*self_p);
        *self_p = NULL;
    }
}

void candidates_add(candidates_t *self, const char *endpoint, const uint8_t *key, int by_mdns)
{
    for (size_t i = 0; i < self->count; i++)
        if (memcmp(self->pool[i].key, key, PROTO_KEY_LEN) == 0) {
            self->pool[i].by_mdns |= by_mdns;
            self->pool[i].by_gossip |= !by_mdns;
            return;
        }
    candidate_t *k;
    if (self->count < CANDIDATES_MAX)
        k = &self->pool[self->count++];
    else {
        /* Full: a newcomer is as likely to be real as any that waits. */
        k = &self->pool[s_random(self, CANDIDATES_MAX)];
        if (self->dropped++ == 0 && self->refilled - self->told >= TELL_EVERY_MS) {
            log_warning("heard of more nodes than can wait to be dialled (%d): dropping some "
                        "at random", CANDIDATES_MAX);
            self->dropped = 0;
            self->told = self->refilled;
        }
    }
    snprintf(k->endpoint, sizeof k->endpoint, "%s", endpoint);
    memcpy(k->key, key, PROTO_KEY_LEN);
    k->by_mdns = by_mdns;
    k->by_gossip = !by_mdns;
}

size_t candidates_waiting(const candidates_t *self)
{
    return self->count;
}

int candidates_token(candidates_t *self, int64_t now)
{
    double rate = self->cap / 4 < 1 ? 1 : self->cap / 4;
    self->tokens += rate * (double) (now - self->refilled) / 1000.0;
    if (self->tokens > self->cap)
        self->tokens = self->cap;
    self->refilled = now;
    if (self->tokens < 1)
        return 0;
    self->tokens -= 1;
    return 1;
}

const char *candidates_host(const char *endpoint, size_t *len)
{
    const char *host = strncmp(endpoint, "tcp://", 6) == 0 ? endpoint + 6 : endpoint;
    const char *colon = strrchr(host, ':');
    *len = colon ? (size_t) (colon - host) : strlen(host);
    return host;
}

int candidates_next(candidates_t *self, candidates_busy_fn *busy, void *arg, candidate_t *ret)
{
    if (self->count == 0)
        return 0;
    size_t best = 0, least = SIZE_MAX, ties = 0;
    for (size_t i = 0; i < self->count; i++) {
        size_t len;
        const char *host = candidates_host(self->pool[i].endpoint, &len);
        size_t n = busy(arg, host, len);
        if (n < least) {
            least = n;
            best = i;
            ties = 1;
        } else if (n == least && s_random(self, ++ties) == 0)
            best = i;       /* each of the equals as likely */
    }
    *ret = self->pool[best];
    self->pool[best] = self->pool[--self->count];
    return 1;
}

int candidates_lookup(const candidates_t *self, const char *about, candidate_t *ret)
{
    size_t len = strlen(about);
    for (size_t i = 0; i < self->count; i++) {
        const candidate_t *k = &self->pool[i];
        char id[PROTO_ID_LEN + 1];
        proto_key_id(k->key, id);
        if (strcmp(k->endpoint, about) == 0 || strcmp(k->endpoint + 6, about) == 0 ||
            (len >= 8 && len <= PROTO_ID_LEN && strncmp(id, about, len) == 0)) {
            *ret = *k;
            return 1;
        }
    }
    return 0;
}

int candidates_take(candidates_t *self, const uint8_t *key, candidate_t *ret)
{
    for (size_t i = 0; i < self->count; i++)
        if (memcmp(self->pool[i].key, key, PROTO_KEY_LEN) == 0) {
            *ret = self->pool[i];
            self->pool[i] = self->pool[--self->count];
            return 1;
        }
    return 0;
}

void candidates_failed_add(candidates_t *self, const char *id, int64_t now)
{
    if (!id[0])
        return;
    size_t i = self->failed_next++ % FAILED_MAX;
    snprintf(self->failed[i].id, sizeof self->failed[i].id, "%s", id);
    self->failed[i].until = now + FAILED_MS;
}

int candidates_failed(const candidates_t *self, const char *id, int64_t now)
{
    for (size_t i = 0; i < FAILED_MAX; i++)
        if (self->failed[i].until > now && strcmp(self->failed[i].id, id) == 0)
            return 1;
    return 0;
}

void candidates_tell(candidates_t *self, int64_t now)
{
    if (self->dropped == 0 || now - self->told < TELL_EVERY_MS)
        return;
    log_warning("heard of more nodes than can wait to be dialled (%d): %u more dropped at "
                "random", CANDIDATES_MAX, self->dropped);
    self->dropped = 0;
    self->told = now;
}
