/*  mdns.h: finding nodes on the LAN with mDNS / DNS-SD through Avahi.

    The node publishes a _ipcnode._tcp service whose TXT records carry its
    id, protocol version, port, name, cluster and public key (Z85), and
    browses for the same type.
    Each node found (not ourselves) is reported with its id and an endpoint
    to dial; a record that goes away is reported too. It runs as a client of
    the system avahi-daemon on the node's loop: if the daemon is absent or
    restarts, the node goes on without it, says so once, and registers and
    browses again as soon as the daemon is back. */
#ifndef IPCNET_MDNS_H
#define IPCNET_MDNS_H

#include "loop.h"

#define MDNS_TYPE "_ipcnode._tcp"

typedef struct mdns mdns_t;

/* A node was found (up) or its record went away (up == 0; endpoint and
   key are then NULL). A record is reported only if its id is its key's
   (32 bytes). Strings and key are borrowed. */
typedef void (mdns_fn) (void *arg, const char *id, const char *name, const char *endpoint,
                        const unsigned char *key, int up);

/* Starts publishing and browsing; only nodes of our cluster are reported.
   Returns NULL only when out of memory; an absent daemon is waited for. */
mdns_t *mdns_new(loop_t *loop, const char *name, const char *id, const char *key,
                 const char *cluster, int port, mdns_fn *fn, void *arg);

/* Withdraws the record and stops; safe on NULL. */
void mdns_destroy(mdns_t **self_p);

#endif
