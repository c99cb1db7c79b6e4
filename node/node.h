/*  node.h: what the daemon is told at start, and what it counts. */
#ifndef IPCNET_NODE_H
#define IPCNET_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define NODE_NAME_MAX 200   /* leaves room for ":<client id>@" in 255 */

typedef struct {
    char socket_path[108];      /* sizeof sun_path */
    char name[NODE_NAME_MAX + 1];
    size_t max_message;         /* payload bytes */
    size_t queue_limit;         /* bytes queued to one client before push-back */
    size_t shm_threshold;       /* payloads this large go as memfds; 0: never */
    unsigned shm_max_fds;       /* memfds in flight from / queued to one client */
    size_t shm_queue_limit;     /* memfd bytes queued to one client */
    unsigned max_clients;
    unsigned request_timeout;   /* ms, for requests that give none */
    int verbose;
    /* between nodes */
    char bind[64];              /* interface address, "*" for all */
    unsigned port;              /* 0: any free port */
    char state_dir[400];        /* where the node id is kept */
    unsigned heartbeat;         /* ms between PINGs; lost after 2.5 */
    size_t window;              /* credit bytes per peer link */
    int no_mdns;
    char cluster[64];           /* only nodes of the same cluster meet */
    char authorized_keys[400];  /* directory of zcert public files, or "" */
    char policy[400];           /* --policy file, or "" */
    char **peers;               /* static peers, "tcp://host:port" */
    size_t npeers;
    /* limits on what clients and peers may make the node hold (docs/limits.md) */
    unsigned max_clients_per_uid;   /* root is counted only in max_clients */
    unsigned hello_timeout;         /* ms for a new client to say HELLO */
    unsigned frame_timeout;         /* ms for a frame begun to be complete */
    size_t max_unfinished;          /* bytes of large frames being read, all clients */
    unsigned max_names, max_subs, max_watches;  /* per client */
    unsigned max_requests;          /* pending requests a client made */
    unsigned max_node_requests;     /* pending requests on this node, all */
    unsigned max_peers;             /* peers known */
    unsigned max_unverified;        /* peers not yet up, dialled at once */
    unsigned max_peer_names, max_peer_subs;     /* per peer */
    unsigned max_peer_requests;     /* pending requests of one peer's clients */
    /* the store (docs/store.md) */
    size_t store_max_keys, store_max_bytes, store_max_value;   /* per node, per value */
    size_t store_uid_keys, store_uid_bytes;                     /* per uid (root: node only) */
    unsigned store_tombstone_ms;    /* a deletion is remembered this long */
    int store_fsync;                /* NODE_FSYNC_* */
    /* who may connect, and whom the node runs as (privs.c) */
    char group[64];             /* --group: the socket's group, "" for the default */
    char user[64];              /* --user: whom root drops to, "" for the default */
    int no_drop;                /* --no-drop: root stays root */
    gid_t access_gid;           /* the socket's group, or (gid_t) -1: its owner only */
    int drop;                   /* started as root, and dropping to run_uid/run_gid */
    uid_t run_uid;
    gid_t run_gid;
} node_config_t;

#define NODE_DEFAULT_MAX_MESSAGE   (16u << 20)
#define NODE_DEFAULT_QUEUE_LIMIT   (8u << 20)
#define NODE_DEFAULT_SHM_THRESHOLD (4u << 20)     /* tests/bench/bench_shm */
#define NODE_DEFAULT_SHM_FDS       16
#define NODE_DEFAULT_SHM_QUEUE     (64u << 20)
#define NODE_DEFAULT_MAX_CLIENTS   4096
#define NODE_DEFAULT_REQ_TIMEOUT   30000
#define NODE_MAX_REQ_TIMEOUT       (24u * 3600 * 1000)
#define NODE_DEFAULT_PORT          5680
#define NODE_DEFAULT_CLUSTER       "ipcnet"
#define NODE_DEFAULT_HEARTBEAT     500
#define NODE_DEFAULT_WINDOW        (16u << 20)
#define NODE_DEFAULT_PER_UID       1024
#define NODE_DEFAULT_HELLO_TIMEOUT 5000
#define NODE_DEFAULT_FRAME_TIMEOUT 10000
#define NODE_DEFAULT_UNFINISHED    (256u << 20)
#define NODE_DEFAULT_PER_CLIENT    4096         /* names, subscriptions, watches, requests */
#define NODE_DEFAULT_NODE_REQUESTS 262144
#define NODE_DEFAULT_MAX_PEERS     256
#define NODE_DEFAULT_UNVERIFIED    16
#define NODE_DEFAULT_PEER_NAMES    65536
#define NODE_DEFAULT_PEER_SUBS     4096
#define NODE_DEFAULT_PEER_REQUESTS 65536

#define NODE_DEFAULT_STORE_KEYS    1000000
#define NODE_DEFAULT_STORE_BYTES   (1u << 30)
#define NODE_DEFAULT_STORE_VALUE   (1u << 20)
#define NODE_DEFAULT_STORE_UID_KEYS 100000
#define NODE_DEFAULT_STORE_UID_BYTES (256u << 20)
#define NODE_DEFAULT_TOMBSTONE_MS  (3600u * 1000)
enum { NODE_FSYNC_BATCH = 0, NODE_FSYNC_ALWAYS = 1, NODE_FSYNC_NEVER = 2, NODE_FSYNC_NONE = 3 };

/* The counters of --stats, kept by the modules that see each event. */
typedef struct {
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t delivered, errors, paused, dropped_clients, violations;
    uint64_t shm_taken, shm_refused, shm_passed, shm_made;   /* memfds (shm.c) */
} node_stats_t;

#endif
