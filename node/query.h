/*  query.h: the listings a client may ask for (IPCNET_Q_*): services,
    peers, stats and clients, as text, one record a line, fields by tab. */
#ifndef IPCNET_QUERY_H
#define IPCNET_QUERY_H

#include "client.h"
#include "cluster.h"
#include "directory.h"
#include "request.h"

typedef struct query query_t;

query_t *query_new(const node_config_t *config, node_stats_t *stats, directory_t *dir,
                   requests_t *requests, cluster_t *cluster);
void query_destroy(query_t **self_p);

/* The store whose counters the stats listing shows. */
struct store;
void query_set_store(query_t *self, struct store *store);

/* QUERY, and the store's KEYS (a listing made as the client reads it). */

/* Answers c's QUERY frame f: the listing in OKs, or an ERROR. Returns
   CLIENT_DONE, or CLIENT_BLOCKED when the client must read before the
   rest is made (the frame is handled again then, and goes on). */
int query_answer(query_t *self, client_t *c, const wire_frame_t *f);

/* Drops what is left of a listing to c (c is going). */
void query_forget(client_t *c);

#endif
