/*  query.c: the listings: services, peers, stats, clients.

    A listing is text, one record a line, sent in OK frames of at most a
    page each, all but the last flagged MORE. A long one (thousands of
    names) is made as the client reads it: pages are queued while the
    client's queue has room, then its QUERY waits, as a send to a full
    receiver does, and goes on from where it stopped once the client has
    read. So any directory can be listed, and listing it costs the node a
    page of memory per client, not the whole text. */

#include "query.h"
#include "store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define PAGE    (256 * 1024)

struct query {
    const node_config_t *cfg;
    node_stats_t *stats;
    directory_t *dir;
    requests_t *requests;
    cluster_t *cluster;
    int64_t started;
    store_t *store;
};

/* A listing being sent to a client. */
struct listing {
    uint32_t seq;               /* of the QUERY it answers */
    size_t cursor;              /* where the walk goes on; 0 when done */
    int begun;
    text_t text;                /* made, not sent yet */
};

query_t *query_new(const node_config_t *config, node_stats_t *stats, directory_t *dir,
                   requests_t *requests, cluster_t *cluster)
{
    query_t *self = calloc(1, sizeof *self);
    if (self)
        *self = (query_t) { config, stats, dir, requests, cluster, loop_clock_ms(), NULL };
    return self;
}

void query_set_store(query_t *self, store_t *store)
{
    self->store = store;
}

void query_destroy(query_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    free(*self_p);
    *self_p = NULL;
}

void query_forget(client_t *c)
{
    if (!c->listing)
        return;
    text_free(&c->listing->text);
    free(c->listing);
    c->listing = NULL;
}

typedef struct {
    text_t *text;
    const char *self;
    const client_t *asker;
} lines_t;

static void s_list_name(name_t *n, void *arg)
{
    lines_t *l = arg;
    /* A label is the client's word: beside it, the user the kernel says. */
    for (size_t i = 0; i < n->holders.size; i++) {
        client_t *h = n->holders.items[i];
        text_printf(l->text, "%s\t%s\t%s\t%s\t%s\n", n->name, l->self, h->address, h->label,
                    h->user);
    }
    /* A peer tells which names it holds, not who holds them there. */
    for (size_t i = 0; i < n->peers.size; i++)
        text_printf(l->text, "%s\t%s\t-\t-\t-\n", n->name, peer_name(n->peers.items[i]));
}

static void s_list_client(client_t *c, void *arg)
{
    lines_t *l = arg;
    /* Another user's processes are that user's business (root sees all). */
    uid_t asker = l->asker->cred.uid;
    char pid[16] = "-";
    if (asker == 0 || asker == c->cred.uid)
        snprintf(pid, sizeof pid, "%d", (int) c->cred.pid);
    text_printf(l->text, "%s\t%s\t%s\t%u\t%zu\t%s\n", c->address, c->label, pid,
                (unsigned) c->cred.uid, c->queued, c->user);
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
    text_printf(t, "shm_threshold\t%zu\nshm_taken\t%llu\nshm_refused\t%llu\n"
                "shm_passed\t%llu\nshm_made\t%llu\n", cfg->shm_threshold,
                (unsigned long long) st->shm_taken, (unsigned long long) st->shm_refused,
                (unsigned long long) st->shm_passed, (unsigned long long) st->shm_made);
    if (self->store)
        store_stats(self->store, t);
}

/* Adds to the text at least a page more of the listing, or the rest of
   it; the walk's cursor says where it goes on. */
static void s_make(query_t *self, const client_t *c, struct listing *l, const wire_frame_t *f,
                   size_t page)
{
    uint32_t what = f->type == WIRE_KEYS ? 0 : f->aux;
    if (what == 0) {
        /* The store's KEYS: its keys matching the pattern, as a listing. */
        do
            l->cursor = store_scan_keys(self->store, l->cursor, c, f->s1, f->s1len, &l->text);
        while (l->cursor && l->text.len < page);
        l->begun = 1;
        return;
    }
    lines_t lines = { &l->text, self->cfg->name, c };
    if (!l->begun) {
        l->begun = 1;
        if (what == WIRE_Q_PEERS) {
            cluster_list(self->cluster, &l->text);
            return;
        }
        if (what == WIRE_Q_DIAGNOSE) {
            char about[WIRE_NAME_MAX + 1];
            wire_copy(about, f->s1, f->s1len);
            about[f->s1len] = 0;
            cluster_diagnose(self->cluster, about, &l->text);
            return;
        }
        if (what == WIRE_Q_STATS) {
            s_stats(self, &l->text);
            return;
        }
        l->cursor = what == WIRE_Q_SERVICES
                  ? directory_scan_names(self->dir, 0, s_list_name, &lines)
                  : directory_scan_clients(self->dir, 0, s_list_client, &lines);
    }
    while (l->cursor && l->text.len < page)
        l->cursor = what == WIRE_Q_SERVICES
                  ? directory_scan_names(self->dir, l->cursor, s_list_name, &lines)
                  : directory_scan_clients(self->dir, l->cursor, s_list_client, &lines);
}

int query_answer(query_t *self, client_t *c, const wire_frame_t *f)
{
    if (f->type == WIRE_KEYS) {
        if (!self->store || wire_check_pattern(f->s1, f->s1len) < 0) {
            client_send_error(c, f, EINVAL, f->s1, f->s1len, "bad pattern");
            return CLIENT_DONE;
        }
    } else if (f->aux < WIRE_Q_SERVICES || f->aux > WIRE_Q_DIAGNOSE) {
        client_send_error(c, f, EINVAL, NULL, 0, "unknown query");
        return CLIENT_DONE;
    }
    if (f->type != WIRE_KEYS && (f->aux == WIRE_Q_DIAGNOSE) != (f->s1len > 0)) {
        client_send_error(c, f, EINVAL, NULL, 0, f->s1len ? "this query takes no argument"
                                                           : "diagnose what? (a peer)");
        return CLIENT_DONE;
    }
    struct listing *l = c->listing;
    if (l && l->seq != f->seq)
        query_forget(c);        /* not possible: a QUERY waits for its own end */
    if (!c->listing && !(c->listing = calloc(1, sizeof *c->listing))) {
        client_send_error(c, f, ENOMEM, NULL, 0, "out of memory");
        return CLIENT_DONE;
    }
    l = c->listing;
    l->seq = f->seq;
    /* A page fits in any frame the client takes. */
    const node_config_t *cfg = self->cfg;
    size_t page = cfg->max_message < PAGE ? (cfg->max_message ? cfg->max_message : 1) : PAGE;
    for (;;) {
        s_make(self, c, l, f, page);
        int last = !l->cursor && l->text.len <= page;
        size_t n = l->text.len < page ? l->text.len : page;
        client_send_control(c, WIRE_OK, last ? 0 : WIRE_F_MORE, f->seq, 0, NULL, 0, NULL, 0,
                            l->text.data, n);
        if (last) {
            query_forget(c);
            return CLIENT_DONE;
        }
        memmove(l->text.data, l->text.data + n, l->text.len - n);
        l->text.len -= n;
        /* The rest when the client has read what it has. */
        if (c->queued > cfg->queue_limit / 2 || c->doomed)
            return c->doomed ? CLIENT_DONE : client_block_on(c, c);
    }
}
