/*  dict.h: a hash table from byte-string keys to pointers.

    Keys are copied in; values are borrowed. Open hashing with chains and a
    power-of-two table that doubles when full, so lookups stay O(1) with
    thousands of names and clients. */
#ifndef IPCNET_DICT_H
#define IPCNET_DICT_H

#include <stddef.h>
#include <stdint.h>

typedef struct dict dict_t;

/* Returns a new empty table, or NULL when out of memory. */
dict_t *dict_new(void);

/* Destroys the table taken from *self_p (not the values); safe on NULL. */
void dict_destroy(dict_t **self_p);

/* The value under key, or NULL. */
void *dict_get(const dict_t *self, const void *key, size_t len);

/* Stores value under key, replacing any. Returns 0 or -ENOMEM. */
int dict_put(dict_t *self, const void *key, size_t len, void *value);

/* Removes key; returns its value, or NULL if it was absent. */
void *dict_del(dict_t *self, const void *key, size_t len);

size_t dict_size(const dict_t *self);

/* Calls fn for each entry, in no order; fn must not change the table. */
void dict_each(const dict_t *self,
               void (*fn) (const void *key, size_t len, void *value, void *arg),
               void *arg);

/* Calls fn for each entry of one slot of the table and returns the next
   cursor (0 when done), starting from 0: a walk that may stop between
   calls while the table changes. The table only grows, and the slots are
   walked in the order of their index's bits reversed, so an entry present
   from the start to the end of a walk is visited exactly once, even if
   the table grew meanwhile. */
size_t dict_scan(const dict_t *self, size_t cursor,
                 void (*fn) (const void *key, size_t len, void *value, void *arg), void *arg);

#endif
