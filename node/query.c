/*  query.c: the listings: services, peers, stats, clients. */

#include "query.h"

#include <errno.h>
#include <stdlib.h>

struct query {
    const node_config_t *cfg;
    node_stats_t *stats;
    directory_t *dir;
    requests_t *requests;
    cluster_t *cluster;
    int64_t started;
};

query_t *query_new(const node_config_t *config, node_stats_t *stats, directory_t *dir,
                   requests_t *requests, cluster_t *cluster)
{
    query_t *self = calloc(1, sizeof *self);
    if (self)
        *self = (query_t) { config, stats, dir, requests, cluster, loop_clock_ms() };
    return self;
}

void query_destroy(query_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

typedef struct {
    text_t *text;
    const char *self;
} listing_t;

static void s_list_name(name_t *n, void *arg)
{
    listing_t *l = arg;
    for (size_t i = 0; i < n->holders.size; i++) {
        client_t *h = n->holders.items[i];
        text_printf(l->text, "%s\t%s\t%s\t%s\n", n->name, l->self, h->address, h->label);
    }
    /* A peer tells which names it holds, not who holds them there. */
    for (size_t i = 0; i < n->peers.size; i++)
        text_printf(l->text, "%s\t%s\t-\t-\n", n->name, peer_name(n->peers.items[i]));
}

static void s_list_client(client_t *c, void *arg)
{
    text_printf(arg, "%s\t%s\t%d\t%u\t%zu\n", c->address, c->label, (int) c->cred.pid,
                (unsigned) c->cred.uid, c->queued);
}

static void s_stats(query_t *self, text_t *t)
{
    const node_config_t *cfg = self->cfg;
    const node_stats_t *st = self->stats;
    text_printf(t,
                "node\t%s\nsocket\t%s\nuptime_ms\t%lld\nclients\t%zu\nnames\t%zu\n"
                "subscriptions\t%zu\npending_requests\t%zu\nframes_in\t%llu\n"
                "frames_out\t%llu\nbytes_in\t%llu\nbytes_out\t%llu\ndelivered\t%llu\n"
                "errors\t%llu\npaused\t%llu\nviolations\t%llu\ndropped_clients\t%llu\n"
                "max_message\t%zu\nqueue_limit\t%zu\nmax_clients\t%u\n",
                cfg->name, cfg->socket_path, (long long) (loop_clock_ms() - self->started),
                directory_nclients(self->dir), directory_nnames(self->dir),
                directory_nsubs(self->dir), requests_count(self->requests),
                (unsigned long long) st->frames_in, (unsigned long long) st->frames_out,
                (unsigned long long) st->bytes_in, (unsigned long long) st->bytes_out,
                (unsigned long long) st->delivered, (unsigned long long) st->errors,
                (unsigned long long) st->paused, (unsigned long long) st->violations,
                (unsigned long long) st->dropped_clients,
                cfg->max_message, cfg->queue_limit, cfg->max_clients);
}

void query_answer(query_t *self, client_t *c, const wire_frame_t *f)
{
    text_t t = { 0 };
    listing_t l = { &t, self->cfg->name };
    switch (f->aux) {
    case WIRE_Q_SERVICES:
        directory_each_name(self->dir, s_list_name, &l);
        break;
    case WIRE_Q_PEERS:
        cluster_list(self->cluster, &t);
        break;
    case WIRE_Q_STATS:
        s_stats(self, &t);
        break;
    case WIRE_Q_CLIENTS:
        directory_each_client(self->dir, s_list_client, &t);
        break;
    default:
        client_send_error(c, f, EINVAL, NULL, 0, "unknown query");
        return;
    }
    client_send_ok(c, f, t.data, t.len);
    text_free(&t);
}
