/*  fuzz_peer.c: a libFuzzer target for the node's handling of what peers
    say, not only the decoder: whole sequences of messages from up to four
    peers go through cluster_input() into the real cluster, directory,
    delivery, requests and client queues of a node built here, with local
    clients on socketpairs that hold a name, subscribe and watch, and the
    idle pass runs after each message as the daemon runs it.

    Input: records of [peer:u8][len:u16 BE][len bytes]; the low two bits of
    peer choose one of four peers (fixed keys, so seeds can name their ids:
    peer i's key is 32 bytes of 0x11 * (i + 1), its id their first 16 in
    hex), bit 7 asks the local clients to read what they were sent (so
    flow control both stops and goes on). Each input starts from a fresh
    node, so a crash replays from its input alone. Seeds: corpus/peer/
    (08-store: the store's records and digest from a peer, whose keys the
    local clients watch).

    The node dials peers that say HELLO back at 127.0.0.1 and the port
    they name: connections to loopback only. Nothing is logged. */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <czmq.h>

#include "client.h"
#include "cluster.h"
#include "deliver.h"
#include "directory.h"
#include "log.h"
#include "query.h"
#include "request.h"
#include "session.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PEERS   4
#define LOCALS  2

static char s_state_dir[64];
static char s_uid[PEERS][2 * PROTO_KEY_LEN + 1];
static char s_id[PEERS][PROTO_ID_LEN + 1];

typedef struct {
    loop_t *loop;
    node_config_t cfg;
    node_stats_t stats;
    clients_t clients;
    policy_t *policy;
    directory_t *dir;
    requests_t *requests;
    deliver_t *deliver;
    cluster_t *cluster;
    query_t *query;
    sessions_t *sessions;
    store_t *store;
    int far[LOCALS];            /* the clients' ends of the socketpairs */
} node_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    zsys_handler_set(NULL);
    zsys_set_logstream(NULL);
    zsys_set_logsystem(false);
    log_quiet();
    snprintf(s_state_dir, sizeof s_state_dir, "/tmp/fuzz_peer.XXXXXX");
    if (!mkdtemp(s_state_dir))
        abort();
    for (int i = 0; i < PEERS; i++) {
        uint8_t key[PROTO_KEY_LEN];
        memset(key, 0x11 * (i + 1), sizeof key);
        proto_hex(key, PROTO_KEY_LEN, s_uid[i]);
        proto_key_id(key, s_id[i]);
    }
    return 0;
}

/* A local client on a socketpair: ready, holding "svc", subscribed to
   everything, watching everything. */
static void s_local(node_t *n, int i)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    client_t *c = client_new(&n->clients, sv[0], (uint64_t) i + 1);
    if (!c)
        abort();
    snprintf(c->address, sizeof c->address, ":%d@fuzz", i + 1);
    c->addrlen = (uint16_t) strlen(c->address);
    c->ready = 1;
    n->far[i] = sv[1];
    if (directory_add_client(n->dir, c) < 0 || session_start(n->sessions, c) < 0)
        abort();
    const char *why;
    directory_bind(n->dir, c, "svc", 3, &why);
    directory_subscribe(n->dir, c, "*", 1, &why);
    directory_watch(n->dir, c, "*", 1, &why);
    /* And every key of the store, with the snapshot a watch starts with. */
    uint8_t frame[WIRE_HEAD_MAX];
    size_t len = wire_encode(frame, WIRE_WATCH_KEYS, 0, 1, 0, "*", 1, NULL, 0, 0);
    wire_frame_t f;
    if (wire_decode(frame, len, &f) < 0)
        abort();
    store_command(n->store, c, &f);
}

static void s_start(node_t *n)
{
    memset(n, 0, sizeof *n);
    n->cfg = (node_config_t) {
        .name = "fuzz", .max_message = 1u << 20, .queue_limit = 16 * 1024,
        .max_clients = 16, .request_timeout = 30000, .bind = "127.0.0.1", .port = 0,
        .heartbeat = 500, .window = 256 * 1024, .no_mdns = 1, .cluster = "fuzz",
        .max_clients_per_uid = 16, .hello_timeout = 5000, .frame_timeout = 10000,
        .max_unfinished = 1u << 22, .max_names = 64, .max_subs = 64, .max_watches = 64,
        .max_requests = 64, .max_node_requests = 256, .max_peers = 8, .max_unverified = 4,
        .max_peer_names = 256, .max_peer_subs = 64, .max_peer_requests = 64,
        .store_max_keys = 256, .store_max_bytes = 1u << 20, .store_max_value = 64 * 1024,
        .store_uid_keys = 256, .store_uid_bytes = 1u << 20, .store_tombstone_ms = 60000,
        .store_fsync = NODE_FSYNC_NONE,
    };
    snprintf(n->cfg.socket_path, sizeof n->cfg.socket_path, "%s/none.sock", s_state_dir);
    snprintf(n->cfg.state_dir, sizeof n->cfg.state_dir, "%s", s_state_dir);
    if (!(n->loop = loop_new()))
        abort();
    clients_init(&n->clients, n->loop, &n->cfg, &n->stats);
    if (!(n->policy = policy_new()) ||
        !(n->dir = directory_new(&n->clients, &n->cfg, n->policy)) ||
        !(n->requests = requests_new(n->loop, &n->cfg, &n->stats)) ||
        !(n->deliver = deliver_new(&n->clients, n->dir, n->requests, n->policy, &n->cfg,
                                   &n->stats)))
        abort();
    /* The last node's ZAP socket may still be closing (libzmq closes
       sockets on its own thread), and its inproc endpoint in use. */
    for (int tries = 0; !n->cluster && tries < 1000; tries++)
        if (!(n->cluster = cluster_new(n->loop, &n->cfg, &n->clients, n->dir, n->deliver,
                                       n->requests)))
            usleep(1000);
    if (!n->cluster ||
        !(n->query = query_new(&n->cfg, &n->stats, n->dir, n->requests, n->cluster)) ||
        !(n->sessions = sessions_new(&n->clients, n->dir, n->deliver, n->requests, n->query)) ||
        !(n->store = store_new(n->loop, &n->cfg, n->policy, cluster_id(n->cluster))))
        abort();
    cluster_set_store(n->cluster, n->store);
    sessions_set_store(n->sessions, n->store);
    for (int i = 0; i < LOCALS; i++)
        s_local(n, i);
}

/* The daemon's idle pass (server.c), once. */
static void s_idle(node_t *n)
{
    for (int round = 0; round < 8; round++) {
        sessions_resume(n->sessions);
        cluster_resume_parked(n->cluster);
        cluster_reap(n->cluster);
        sessions_teardown(n->sessions);
        sessions_write(n->sessions);
        if (n->clients.runnable.size == 0 && n->clients.runnable_peers.size == 0 &&
            n->clients.doomed.size == 0)
            break;
    }
    sessions_free_graveyard(n->sessions);
}

static void s_write(client_t *c, void *arg)
{
    (void) arg;
    if (!c->doomed)
        client_write(c);
}

/* The local clients read what they were sent; the node, told their
   sockets can take more (as the loop would), writes on. */
static void s_drain(node_t *n)
{
    uint8_t buf[65536];
    for (int i = 0; i < LOCALS; i++)
        while (read(n->far[i], buf, sizeof buf) > 0)
            ;
    directory_each_client(n->dir, s_write, NULL);
    s_idle(n);
}

static void s_stop(node_t *n)
{
    sessions_close_all(n->sessions);
    cluster_set_store(n->cluster, NULL);
    store_destroy(&n->store);
    cluster_destroy(&n->cluster);
    query_destroy(&n->query);
    sessions_destroy(&n->sessions);
    deliver_destroy(&n->deliver);
    requests_destroy(&n->requests);
    directory_destroy(&n->dir);
    policy_destroy(&n->policy);
    clients_fini(&n->clients);
    buf_pool_clear();
    loop_destroy(&n->loop);
    for (int i = 0; i < LOCALS; i++)
        close(n->far[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    node_t n;
    s_start(&n);
    size_t at = 0;
    while (size - at >= 3) {
        uint8_t who = data[at];
        size_t len = (size_t) data[at + 1] << 8 | data[at + 2];
        at += 3;
        if (len > size - at)
            len = size - at;
        zmq_msg_t body;
        if (zmq_msg_init_size(&body, len) < 0)
            abort();
        if (len)
            memcpy(zmq_msg_data(&body), data + at, len);
        at += len;
        int p = who & (PEERS - 1);
        cluster_input(n.cluster, s_uid[p], "127.0.0.1", s_id[p], PROTO_ID_LEN, &body);
        zmq_msg_close(&body);
        s_idle(&n);
        if (who & 0x80)
            s_drain(&n);
    }
    s_stop(&n);
    return 0;
}
