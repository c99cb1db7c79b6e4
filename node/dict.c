/*  dict.c: chained hash table with FNV-1a hashing. */

#include "dict.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    uint32_t hash;
    uint32_t len;
    void *value;
    unsigned char key[];
} entry_t;

struct dict {
    entry_t **slots;
    size_t mask;        /* slots - 1; a power of two less one */
    size_t size;
};

static uint32_t s_hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

dict_t *dict_new(void)
{
    dict_t *self = calloc(1, sizeof *self);
    if (self && !(self->slots = calloc(16, sizeof *self->slots))) {
        free(self);
        return NULL;
    }
    if (self)
        self->mask = 15;
    return self;
}

void dict_destroy(dict_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    dict_t *self = *self_p;
    for (size_t i = 0; i <= self->mask; i++)
        for (entry_t *e = self->slots[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(self->slots);
    free(self);
    *self_p = NULL;
}

static entry_t **s_find(const dict_t *self, const void *key, size_t len, uint32_t hash)
{
    entry_t **at = &self->slots[hash & self->mask];
    for (; *at; at = &(*at)->next)
        if ((*at)->hash == hash && (*at)->len == len && memcmp((*at)->key, key, len) == 0)
            break;
    return at;
}

void *dict_get(const dict_t *self, const void *key, size_t len)
{
    entry_t *e = *s_find(self, key, len, s_hash(key, len));
    return e ? e->value : NULL;
}

/* Doubles the table; on failure keeps the old one (longer chains). */
static void s_grow(dict_t *self)
{
    size_t slots = (self->mask + 1) * 2;
    entry_t **table = calloc(slots, sizeof *table);
    if (!table)
        return;
    for (size_t i = 0; i <= self->mask; i++)
        for (entry_t *e = self->slots[i], *next; e; e = next) {
            next = e->next;
            e->next = table[e->hash & (slots - 1)];
            table[e->hash & (slots - 1)] = e;
        }
    free(self->slots);
    self->slots = table;
    self->mask = slots - 1;
}

int dict_put(dict_t *self, const void *key, size_t len, void *value)
{
    uint32_t hash = s_hash(key, len);
    entry_t **at = s_find(self, key, len, hash);
    if (*at) {
        (*at)->value = value;
        return 0;
    }
    entry_t *e = malloc(sizeof *e + len);
    if (!e)
        return -ENOMEM;
    e->next = NULL;
    e->hash = hash;
    e->len = (uint32_t) len;
    e->value = value;
    memcpy(e->key, key, len);
    *at = e;
    if (++self->size > self->mask + 1)
        s_grow(self);
    return 0;
}

void *dict_del(dict_t *self, const void *key, size_t len)
{
    entry_t **at = s_find(self, key, len, s_hash(key, len));
    entry_t *e = *at;
    if (!e)
        return NULL;
    void *value = e->value;
    *at = e->next;
    free(e);
    self->size--;
    return value;
}

size_t dict_size(const dict_t *self)
{
    return self->size;
}

void dict_each(const dict_t *self,
               void (*fn) (const void *key, size_t len, void *value, void *arg),
               void *arg)
{
    for (size_t i = 0; i <= self->mask; i++)
        for (entry_t *e = self->slots[i]; e; e = e->next)
            fn(e->key, e->len, e->value, arg);
}

static size_t s_reverse(size_t v)
{
    size_t r = 0;
    for (size_t i = 0; i < sizeof v * 8; i++, v >>= 1)
        r = (r << 1) | (v & 1);
    return r;
}

/* Buckets in the order of their index's bits reversed (as Redis's SCAN):
   when the table doubles between two calls, the buckets already visited
   are exactly those that split into buckets the cursor has passed, so no
   entry is visited twice or missed. The table never shrinks. */
size_t dict_scan(const dict_t *self, size_t cursor,
                 void (*fn) (const void *key, size_t len, void *value, void *arg), void *arg)
{
    for (entry_t *e = self->slots[cursor & self->mask]; e; e = e->next)
        fn(e->key, e->len, e->value, arg);
    cursor |= ~self->mask;
    return s_reverse(s_reverse(cursor) + 1);
}
