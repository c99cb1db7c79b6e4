/*  directory.h: who is here and what they hold: clients by id, names and
    their holders (local clients, and the nodes that hold them), topic
    subscriptions (local clients', and each peer's patterns), watches, and
    the events a watch sees when a name or a node comes or goes.

    It keeps the other nodes told: a name that gains its first local
    holder or loses its last, a pattern that gains its first local
    subscriber or loses its last, is sent to every peer that is up, and a
    peer that comes up is sent all of them. */
#ifndef IPCNET_DIRECTORY_H
#define IPCNET_DIRECTORY_H

#include "buf.h"
#include "client.h"
#include "node.h"
#include "peer.h"
#include "policy.h"
#include "proto.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct directory directory_t;

/* A service name and who holds it. */
typedef struct name {
    char *name;
    vec_t holders;              /* local clients */
    size_t next;                /* round robin */
    vec_t peers;                /* nodes that hold it */
    size_t next_peer;
} name_t;

/* A subscription pattern of local clients. */
typedef struct {
    char *pattern;
    int prefix;                 /* pattern ends in '*' */
    vec_t clients;
} sub_t;

/* policy (borrowed) decides who may bind, subscribe and watch what. */
directory_t *directory_new(clients_t *clients, const node_config_t *config, policy_t *policy);
void directory_destroy(directory_t **self_p);

/* --- this node and its clients --------------------------------------------- */

const char *directory_self(const directory_t *self);

/* Our node id (32 hex digits, as the cluster found it), and as bytes. */
void directory_set_id(directory_t *self, const char *id_hex);
const uint8_t *directory_id(const directory_t *self);

/* Is node (len 0: none given) this node? */
int directory_is_self(const directory_t *self, const char *node, size_t len);

/* Bumped when a route may have gone stale (route.h). */
uint64_t directory_gen(const directory_t *self);

/* Adds a client to the table of ids. Returns 0 or -ENOMEM. */
int directory_add_client(directory_t *self, client_t *c);

/* The client is going: its names, subscriptions and watches go (with the
   events that says), and its id. */
void directory_client_gone(directory_t *self, client_t *c);

/* The client of id, if it is live and has said HELLO. */
client_t *directory_client(const directory_t *self, uint64_t id);

size_t directory_nclients(const directory_t *self);

/* A step of a walk over the clients that may stop between steps (see
   dict_scan): calls fn for some of them; returns the next cursor, 0 at
   the end. */
size_t directory_scan_clients(const directory_t *self, size_t cursor,
                              void (*fn) (client_t *c, void *arg), void *arg);

/* How many clients of this user are connected. */
size_t directory_clients_of(const directory_t *self, uid_t uid);
void directory_each_client(const directory_t *self, void (*fn) (client_t *c, void *arg),
                           void *arg);

/* --- names ---------------------------------------------------------------------- */

/* Returns 0, -EEXIST (c holds it), -ENOBUFS (c holds too many), -ENOMEM,
   -EACCES (a policy rule, or the name is held by another user: *ret_why
   says which). */
int directory_bind(directory_t *self, client_t *c, const char *name, size_t len,
                   const char **ret_why);

/* Returns 0 or -ENOENT (c does not hold it). */
int directory_unbind(directory_t *self, client_t *c, const char *name, size_t len);

name_t *directory_name(const directory_t *self, const char *name, size_t len);
size_t directory_nnames(const directory_t *self);
void directory_each_name(const directory_t *self, void (*fn) (name_t *n, void *arg), void *arg);

/* A step of a walk over the names, as directory_scan_clients. */
size_t directory_scan_names(const directory_t *self, size_t cursor,
                            void (*fn) (name_t *n, void *arg), void *arg);

/* --- subscriptions ------------------------------------------------------------- */

/* Return 0, -EEXIST, -ENOBUFS, -ENOMEM, -EACCES (*ret_why: the rule);
   and 0 or -ENOENT. */
int directory_subscribe(directory_t *self, client_t *c, const char *pattern, size_t len,
                        const char **ret_why);
int directory_unsubscribe(directory_t *self, client_t *c, const char *pattern, size_t len);

/* The local subscriptions whose pattern matches topic: the exact one (or
   NULL) and those with a '*', which the caller matches. */
sub_t *directory_exact_sub(const directory_t *self, const char *topic, size_t len);
const vec_t *directory_prefix_subs(const directory_t *self);
size_t directory_nsubs(const directory_t *self);

/* The peers (up) with a pattern that matches topic, into *ret (emptied
   first). Returns how many. */
size_t directory_remote_subscribers(directory_t *self, const char *topic, size_t len,
                                    vec_t *ret);

/* --- watches ------------------------------------------------------------------ */

/* Return 0, -EEXIST, -ENOBUFS, -ENOMEM, -EACCES (*ret_why: the rule);
   and 0 or -ENOENT. A watcher sees only the events of names (and nodes)
   the policy lets it watch. */
int directory_watch(directory_t *self, client_t *c, const char *pattern, size_t len,
                    const char **ret_why);
int directory_unwatch(directory_t *self, client_t *c, const char *pattern, size_t len);

/* The events a new watch starts with: every name held now, per node. */
void directory_watch_snapshot(directory_t *self, client_t *c, const char *pattern, size_t len);

/* --- other nodes ------------------------------------------------------------- */

/* peer came up: watchers are told, and it is told our names and patterns.
   Or it went down: watchers are told. */
void directory_peer_state(directory_t *self, peer_t *peer, int up);

/* The names and patterns of peer go (it was lost), with their events. */
void directory_peer_forget(directory_t *self, peer_t *peer);

/* A NAMES_ADD, NAMES_DEL, SUBS_ADD or SUBS_DEL from peer. */
void directory_peer_list(directory_t *self, peer_t *peer, const proto_msg_t *m);

/* The peer that is up and is node name: by its id (32 hex digits), or by
   its name, which is the node's whose key first claimed it. NULL if none. */
peer_t *directory_node(const directory_t *self, const char *name, size_t len);

/* The cluster forgets peer: a name it claimed is free again. */
void directory_peer_release(directory_t *self, peer_t *peer);

/* MONITOR: c sees what the node routes to names matching pattern (len 0:
   everything), as far as it may (deliver.c); a second call replaces the
   pattern. Undone when c goes. Returns 0 or -ENOMEM. */
int directory_monitor(directory_t *self, client_t *c, const char *pattern, size_t len);
const vec_t *directory_monitors(const directory_t *self);

/* Is the name peer says it has the one its key claimed first here? */
int directory_owns_name(const directory_t *self, const peer_t *peer);

#endif
