/*  avahi_poll.h: Avahi's AvahiPoll interface on the node's event loop.

    Avahi asks for file descriptor watches and timeouts; this adapter maps
    them onto loop_t, so avahi-client runs in the node's one thread and
    nothing blocks. Several watches may share a file descriptor (libdbus
    makes one for reading and one for writing); a callback may free its own
    watch or timeout, or any other. */
#ifndef IPCNET_AVAHI_POLL_H
#define IPCNET_AVAHI_POLL_H

#include "loop.h"

#include <avahi-common/watch.h>

typedef struct avahi_poll avahi_poll_t;

/* Returns a new adapter for loop, or NULL when out of memory. */
avahi_poll_t *avahi_poll_new(loop_t *loop);

/* Frees the adapter taken from *self_p; every watch and timeout must have
   been freed by then (free the AvahiClient first). Safe on NULL. */
void avahi_poll_destroy(avahi_poll_t **self_p);

/* The AvahiPoll to give avahi_client_new(); borrowed. */
const AvahiPoll *avahi_poll_get(avahi_poll_t *self);

#endif
