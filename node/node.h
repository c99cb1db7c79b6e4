/*  node.h: what the daemon is told at start, and what it counts. */
#ifndef IPCNET_NODE_H
#define IPCNET_NODE_H

#include <stddef.h>
#include <stdint.h>

#define NODE_NAME_MAX 200   /* leaves room for ":<client id>@" in 255 */

typedef struct {
    char socket_path[108];      /* sizeof sun_path */
    char name[NODE_NAME_MAX + 1];
    size_t max_message;         /* payload bytes */
    size_t queue_limit;         /* bytes queued to one client before push-back */
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
    char **peers;               /* static peers, "tcp://host:port" */
    size_t npeers;
} node_config_t;

#define NODE_DEFAULT_MAX_MESSAGE   (16u << 20)
#define NODE_DEFAULT_QUEUE_LIMIT   (8u << 20)
#define NODE_DEFAULT_MAX_CLIENTS   4096
#define NODE_DEFAULT_REQ_TIMEOUT   30000
#define NODE_MAX_REQ_TIMEOUT       (24u * 3600 * 1000)
#define NODE_DEFAULT_PORT          5680
#define NODE_DEFAULT_CLUSTER       "ipcnet"
#define NODE_DEFAULT_HEARTBEAT     500
#define NODE_DEFAULT_WINDOW        (16u << 20)

/* The counters of --stats, kept by the modules that see each event. */
typedef struct {
    uint64_t frames_in, frames_out, bytes_in, bytes_out;
    uint64_t delivered, errors, paused, dropped_clients, violations;
} node_stats_t;

#endif
