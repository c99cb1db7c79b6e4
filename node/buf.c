/*  buf.c: shared buffers (own or ZeroMQ-backed) and their pool, vectors
    and rings. */

#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* One pool for the process (the node has one thread). */
#define POOL_SLOTS  8
#define POOL_BYTES  (64u << 20)
static struct {
    buf_t *items[POOL_SLOTS];
    size_t count, bytes;
} s_pool;

buf_t *buf_new(size_t cap)
{
    buf_t *b = NULL;
    if (cap > BUF_SMALL) {
        /* The smallest pooled buffer that fits, if it is not twice too big. */
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < s_pool.count; i++)
            if (s_pool.items[i]->cap >= cap && s_pool.items[i]->cap <= 2 * cap &&
                (best == SIZE_MAX || s_pool.items[i]->cap < s_pool.items[best]->cap))
                best = i;
        if (best != SIZE_MAX) {
            b = s_pool.items[best];
            s_pool.items[best] = s_pool.items[--s_pool.count];
            s_pool.bytes -= b->cap;
            b->refs = 1;
            return b;
        }
    }
    b = malloc(sizeof *b + cap);
    if (b) {
        b->refs = 1;
        b->cap = cap;
        b->data = (uint8_t *) (b + 1);
        b->zmsg = NULL;
        b->fd = -1;
    }
    return b;
}

buf_t *buf_of_zmq(zmq_msg_t *msg)
{
    buf_t *b = malloc(sizeof *b + sizeof (zmq_msg_t));
    if (!b)
        return NULL;
    b->zmsg = (zmq_msg_t *) (b + 1);
    if (zmq_msg_init(b->zmsg) < 0 || zmq_msg_copy(b->zmsg, msg) < 0) {
        free(b);
        return NULL;
    }
    b->refs = 1;
    b->fd = -1;
    b->cap = zmq_msg_size(b->zmsg);
    b->data = zmq_msg_data(b->zmsg);
    return b;
}

void buf_unref(buf_t **bp)
{
    buf_t *b = *bp;
    *bp = NULL;
    if (!b || --b->refs > 0)
        return;
    if (b->zmsg) {
        zmq_msg_close(b->zmsg);
        free(b);
        return;
    }
    if (b->fd >= 0) {
        munmap(b->data, b->cap);
        close(b->fd);
        free(b);
        return;
    }
    if (b->cap > BUF_SMALL && b->cap <= POOL_BYTES / 4 && s_pool.bytes + b->cap <= POOL_BYTES) {
        if (s_pool.count == POOL_SLOTS) {
            /* Make room: the oldest goes. */
            s_pool.bytes -= s_pool.items[0]->cap;
            free(s_pool.items[0]);
            s_pool.items[0] = s_pool.items[--s_pool.count];
        }
        s_pool.items[s_pool.count++] = b;
        s_pool.bytes += b->cap;
        return;
    }
    free(b);
}

void buf_pool_clear(void)
{
    while (s_pool.count > 0)
        free(s_pool.items[--s_pool.count]);
    s_pool.bytes = 0;
}

char *buf_strndup(const char *s, size_t len)
{
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = 0;
    }
    return d;
}

int vec_push(vec_t *v, void *item)
{
    if (v->size == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 4;
        void **items = realloc(v->items, cap * sizeof *items);
        if (!items)
            return -ENOMEM;
        v->items = items;
        v->cap = cap;
    }
    v->items[v->size++] = item;
    return 0;
}

int vec_remove(vec_t *v, const void *item)
{
    for (size_t i = 0; i < v->size; i++)
        if (v->items[i] == item) {
            v->items[i] = v->items[--v->size];
            return 1;
        }
    return 0;
}

int vec_has(const vec_t *v, const void *item)
{
    for (size_t i = 0; i < v->size; i++)
        if (v->items[i] == item)
            return 1;
    return 0;
}

void vec_free(vec_t *v)
{
    free(v->items);
    *v = (vec_t) { 0 };
}

void *ring_push(ring_t *r, size_t elem, size_t initial)
{
    if (r->count == r->cap) {
        /* Twice the room, the items moved to the front in order. */
        size_t cap = r->cap ? r->cap * 2 : initial;
        uint8_t *items = malloc(cap * elem);
        if (!items)
            return NULL;
        for (size_t i = 0; i < r->count; i++)
            memcpy(items + i * elem,
                   (uint8_t *) r->items + ((r->first + i) & (r->cap - 1)) * elem, elem);
        free(r->items);
        r->items = items;
        r->cap = cap;
        r->first = 0;
    }
    size_t at = (r->first + r->count++) & (r->cap - 1);
    return (uint8_t *) r->items + at * elem;
}

void ring_free(ring_t *r)
{
    free(r->items);
    *r = (ring_t) { 0 };
}

void text_printf(text_t *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0,
                          fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (t->data && (size_t) n < t->cap - t->len) {
            t->len += (size_t) n;
            return;
        }
        size_t want = (t->cap ? t->cap * 2 : 4096) + (size_t) n;
        char *d = realloc(t->data, want);
        if (!d)
            return;
        t->data = d;
        t->cap = want;
    }
}

void text_free(text_t *t)
{
    free(t->data);
    *t = (text_t) { 0 };
}
