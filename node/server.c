/*  server.c: the node core: its parts, built in the order they depend on
    each other, and the idle pass as a list of named steps.

    Every part reports what it cannot finish on the spot (a client paused,
    doomed or with bytes to write, a peer whose parked messages may move,
    a link that failed) by putting it on a list; the idle pass, run before
    each sleep, works through those lists. Nothing reaches up into the
    stack of its caller, so no callback sees an object freed under it. */

#include "server.h"
#include "buf.h"
#include "client.h"
#include "cluster.h"
#include "deliver.h"
#include "directory.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "policy.h"
#include "privs.h"
#include "query.h"
#include "request.h"
#include "session.h"
#include "store.h"

#include <czmq.h>
#include <stdlib.h>

struct server {
    loop_t *loop;
    node_config_t config;
    node_stats_t stats;
    clients_t clients;
    policy_t *policy;
    directory_t *dir;
    requests_t *requests;
    deliver_t *deliver;
    cluster_t *cluster;
    query_t *query;
    store_t *store;
    sessions_t *sessions;
    listener_t *listener;
};

/* Before each sleep. Returns 1 if work is left (the loop must not sleep). */
static int s_idle(loop_t *loop, void *arg)
{
    (void) loop;
    server_t *s = arg;
    clients_t *clients = &s->clients;
    for (int round = 0; round < 8; round++) {
        sessions_resume(s->sessions);           /* paused clients that may go on */
        cluster_resume_parked(s->cluster);      /* peers' messages waiting for room */
        cluster_reap(s->cluster);               /* links that failed */
        sessions_teardown(s->sessions);         /* clients that are gone */
        sessions_write(s->sessions);            /* queued frames out */
        if (clients->runnable.size == 0 && clients->runnable_peers.size == 0 &&
            clients->doomed.size == 0)
            break;
    }
    sessions_free_graveyard(s->sessions);
    int more = cluster_idle(s->cluster);        /* batches out, ZeroMQ edges */
    return more || clients->runnable.size > 0 || clients->runnable_peers.size > 0 ||
           clients->doomed.size > 0 || clients->dirty.size > 0;
}

server_t *server_new(loop_t *loop, const node_config_t *config)
{
    server_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->config = *config;
    const node_config_t *cfg = &s->config;
    clients_init(&s->clients, loop, cfg, &s->stats);
    if (!(s->policy = policy_new()) ||
        (cfg->policy[0] && policy_load(s->policy, cfg->policy, 0) < 0) ||
        !(s->dir = directory_new(&s->clients, cfg, s->policy)) ||
        !(s->requests = requests_new(loop, cfg, &s->stats)) ||
        !(s->deliver = deliver_new(&s->clients, s->dir, s->requests, s->policy, cfg,
                                   &s->stats))) {
        server_destroy(&s);
        return NULL;
    }
    /* The socket before the ROUTER: a second node on the same socket is
       refused before it touches the network. Clients are accepted once
       everything that serves them is there. */
    if (!(s->listener = listener_new(&s->clients, s->dir)) ||
        !(s->cluster = cluster_new(loop, cfg, &s->clients, s->dir, s->deliver, s->requests))) {
        server_destroy(&s);
        return NULL;
    }
    directory_set_id(s->dir, cluster_id(s->cluster));   /* who we say we are */
    if (!(s->store = store_new(loop, cfg, s->policy, cluster_id(s->cluster)))) {
        server_destroy(&s);
        return NULL;
    }
    cluster_set_store(s->cluster, s->store);
    if (!(s->query = query_new(cfg, &s->stats, s->dir, s->requests, s->cluster)) ||
        !(s->sessions = sessions_new(&s->clients, s->dir, s->deliver, s->requests, s->query))) {
        server_destroy(&s);
        return NULL;
    }
    sessions_set_store(s->sessions, s->store);
    query_set_store(s->query, s->store);
    if (listener_serve(s->listener, s->sessions) < 0) {
        server_destroy(&s);
        return NULL;
    }
    /* Everything that needs root is open: the files it made go to the
       user it becomes, and root goes. */
    listener_hand_over(s->listener);
    cluster_hand_over(s->cluster);
    if (privs_drop(cfg) < 0) {
        server_destroy(&s);
        return NULL;
    }
    loop_set_idle(loop, s_idle, s);
    return s;
}

void server_reload(server_t *s)
{
    if (!s->config.policy[0]) {
        log_notice("reload: no --policy to read again");
        return;
    }
    notify("RELOADING=1");
    if (policy_load(s->policy, s->config.policy, 1) == 0)
        log_notice("reload: the rules of %s are in force", s->config.policy);
    else
        log_error("reload: %s has errors (above): the rules before it stay in force",
                  s->config.policy);
    notify("READY=1");
}

void server_destroy(server_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    server_t *s = *self_p;
    if (s->sessions)
        sessions_close_all(s->sessions);
    /* After the clients, whose teardown still tells peers; then goodbye. */
    if (s->cluster)
        cluster_set_store(s->cluster, NULL);
    store_destroy(&s->store);
    cluster_destroy(&s->cluster);
    loop_set_idle(s->loop, NULL, NULL);
    listener_destroy(&s->listener);
    query_destroy(&s->query);
    sessions_destroy(&s->sessions);
    deliver_destroy(&s->deliver);
    requests_destroy(&s->requests);
    directory_destroy(&s->dir);
    policy_destroy(&s->policy);
    clients_fini(&s->clients);
    buf_pool_clear();
    free(s);
    *self_p = NULL;
}
