/*  buf.h: the node's memory: shared buffers, vectors and rings.

    A buf_t is a reference-counted block of bytes shared by the queues that
    carry it: the node's own memory, or a ZeroMQ message from a peer held
    without copying it. Large buffers are pooled, since a fresh one costs a
    page fault per 4 KiB, more than filling it. A vec_t is an unordered list
    of pointers; a ring_t a FIFO of fixed-size items that doubles when full. */
#ifndef IPCNET_BUF_H
#define IPCNET_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#define BUF_SMALL   (64 * 1024)     /* buffers up to this size are not pooled */

typedef struct {
    uint32_t refs;
    size_t cap;
    uint8_t *data;
    zmq_msg_t *zmsg;            /* NULL: data is ours, after this header */
    int fd;                     /* >= 0: data maps this sealed memfd (shm.c) */
} buf_t;

/* A buffer of cap bytes with one reference, or NULL when out of memory. */
buf_t *buf_new(size_t cap);

/* A buffer sharing the bytes of a ZeroMQ message (a large message's bytes
   are shared by reference count, not copied). NULL when out of memory. */
buf_t *buf_of_zmq(zmq_msg_t *msg);

static inline buf_t *buf_ref(buf_t *b)
{
    b->refs++;
    return b;
}

/* Drops the reference taken from *bp and sets *bp to NULL; safe on NULL. */
void buf_unref(buf_t **bp);

/* Frees the pooled buffers (at exit). */
void buf_pool_clear(void);

/* --- vectors ------------------------------------------------------------------ */

typedef struct {
    void **items;
    size_t size, cap;
} vec_t;

/* Appends item. Returns 0 or -ENOMEM. */
int vec_push(vec_t *v, void *item);

/* Removes item (the last takes its place). Returns 1 if it was there. */
int vec_remove(vec_t *v, const void *item);

int vec_has(const vec_t *v, const void *item);
void vec_free(vec_t *v);

/* --- rings -------------------------------------------------------------------- */

/* A FIFO of items of one size; its capacity is a power of two. */
typedef struct {
    void *items;
    size_t first, count, cap;
} ring_t;

/* The i-th item from the front, as type. */
#define RING_AT(r, type, i) (((type *) (r)->items)[((r)->first + (i)) & ((r)->cap - 1)])

/* Room for one more item of size elem (doubling the ring, starting at
   initial items). Returns where the new last item goes, counted in, or
   NULL when out of memory (the ring is unchanged). */
void *ring_push(ring_t *r, size_t elem, size_t initial);

/* Drops the first item. */
static inline void ring_pop(ring_t *r)
{
    r->first = (r->first + 1) & (r->cap - 1);
    r->count--;
}

void ring_free(ring_t *r);

/* --- texts ------------------------------------------------------------------- */

/* A growing text, zeroed before first use. */
typedef struct {
    char *data;
    size_t len, cap;
} text_t;

/* Appends a formatted record; when memory runs out the text is cut short,
   which a listing survives. */
void text_printf(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void text_free(text_t *t);

/* A copy of len bytes of s with a NUL, or NULL; given. */
char *buf_strndup(const char *s, size_t len);

#endif
