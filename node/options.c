/*  options.c: the option table, --config files, and the checks of every
    value. */

#include "options.h"
#include "ipcnet.h"
#include "keys.h"
#include "path.h"
#include "paths.h"
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char s_usage[] =
    "Usage: ipc-node [OPTION]...            run the node\n"
    "       ipc-node VERB [OPTION]...       talk to the running node\n"
    "\n"
    "Node options:\n"
    "  --socket PATH         Unix socket (default: $IPCNET_SOCKET, else\n"
    "                        /run/ipc-node/node.sock as root,\n"
    "                        $XDG_RUNTIME_DIR/ipc-node/node.sock otherwise)\n"
    "  --name NAME           node name (default: the host name)\n"
    "  --max-message BYTES   largest payload (default 16M; K, M, G suffixes)\n"
    "  --queue-limit BYTES   bytes queued to one client before its senders\n"
    "                        wait (default 8M)\n"
    "  --shm-threshold BYTES payloads this large travel as sealed memfds\n"
    "                        (default 4M; 0: never)\n"
    "  --shm-max-fds N       memfds in flight from, or queued to, one client\n"
    "                        (default 16)\n"
    "  --shm-queue-limit BYTES  memfd bytes queued to one client (default 64M)\n"
    "  --max-clients N       clients at once (default 4096)\n"
    "  --request-timeout MS  for requests that give none (default 30000)\n"
    "  --port N              TCP port for other nodes (default 5680; 0: any)\n"
    "  --bind ADDR           address to listen on for other nodes (default *)\n"
    "  --peer tcp://HOST:PORT[#KEY]  a node to join (repeatable); gossip finds\n"
    "                        the rest. KEY: its public key (ipc-node --key\n"
    "                        there); without it, learned on first use\n"
    "  --authorized-keys DIR take only nodes whose keys are in DIR (zcert\n"
    "                        public files, such as their node.key)\n"
    "  --state-dir DIR       where the key pair (and so the id) is kept (default\n"
    "                        /var/lib/ipc-node as root, else\n"
    "                        $XDG_STATE_HOME/ipc-node)\n"
    "  --heartbeat MS        between heartbeats (default 500); a peer silent\n"
    "                        for 2.5 of its heartbeats is lost\n"
    "  --window BYTES        bytes in flight to one peer (default 16M)\n"
    "  --no-mdns             do not use mDNS discovery\n"
    "  --cluster NAME        meet only nodes of this cluster (default ipcnet)\n"
    "  --config FILE         read options from FILE: one 'option value' a line\n"
    "                        (as root, " DEFAULT_CONFIG " is read\n"
    "                        first when it exists)\n"
    "  --no-config           do not read " DEFAULT_CONFIG "\n"
    "  --group NAME          who may connect: the socket's group (as root: default\n"
    "                        ipc-node if it exists, else root; otherwise none)\n"
    "  --user NAME           as root, become NAME once the sockets are open\n"
    "                        (default ipc-node if it exists)\n"
    "  --no-drop             as root, stay root\n"
    "  --policy FILE         who may do what with which names (read again on\n"
    "                        SIGHUP)\n"
    "  --syslog              log to syslog as well as stderr\n"
    "  -v, --verbose         log every client that connects; with --listen or\n"
    "                        --subscribe, print who sent each message\n"
    "\n"
    "Limits (what clients and peers may make the node hold; docs/limits.md):\n"
    "  --max-clients-per-uid N   clients of one user, root aside (default 1024)\n"
    "  --hello-timeout MS        for a new client to say HELLO (default 5000)\n"
    "  --frame-timeout MS        for a frame begun to be complete (default 10000)\n"
    "  --max-unfinished BYTES    large frames being read, all clients (default 256M)\n"
    "  --max-names N             names one client holds (default 4096)\n"
    "  --max-subscriptions N     patterns one client subscribes to (default 4096)\n"
    "  --max-watches N           patterns one client watches (default 4096)\n"
    "  --max-requests N          pending requests of one client (default 4096)\n"
    "  --max-node-requests N     pending requests on this node (default 262144)\n"
    "  --max-peers N             peers known (default 256)\n"
    "  --max-unverified N        peers being dialled, not yet up (default 16)\n"
    "  --max-peer-names N        names one peer holds (default 65536)\n"
    "  --max-peer-subscriptions N  patterns one peer subscribes to (default 4096)\n"
    "  --max-peer-requests N     pending requests of one peer's clients (default 65536)\n"
    "The store (docs/store.md):\n"
    "  --store-fsync always|batch|never|off  when the store's log reaches the disk\n"
    "                        (default batch: within 50 ms; off: no log at all)\n"
    "  --store-max-keys N        keys and deletions held (default 1000000)\n"
    "  --store-max-bytes N       bytes of keys and values held (default 1G)\n"
    "  --store-max-value N       bytes of one value (default 1M)\n"
    "  --store-max-keys-per-uid N  keys one uid may put (default 100000)\n"
    "  --store-max-bytes-per-uid N bytes one uid may put (default 256M)\n"
    "  --store-tombstone-ms MS   how long a deletion is remembered (default 3600000)\n"
    "\n"
    "Verbs:\n"
    "  --services            names and who holds them\n"
    "  --peers               known nodes\n"
    "  --clients             connected clients\n"
    "  --stats               counters\n"
    "  --key                 print this node's public key (from --state-dir)\n"
    "  --policy-check FILE   read a policy file and print its rules, or its errors\n"
    "  --send NAME DATA      send DATA (\"-\": standard input) to NAME\n"
    "  --request NAME DATA   send a request and print the reply\n"
    "  --listen NAME         hold NAME and print each message received\n"
    "  --publish TOPIC DATA  publish DATA on TOPIC\n"
    "  --subscribe PATTERN   print each publication matching PATTERN\n"
    "  --watch PATTERN       print names matching PATTERN as they come and go\n"
    "  --monitor [PATTERN]   print every message the node routes (to names\n"
    "                        matching PATTERN): time, kind, from, to, size, bytes\n"
    "  --check [NAME]        exit 0 if the node answers (and someone holds NAME)\n"
    "  --ping [NODE|NAME]    round trips: to this node, a peer's (heartbeats), or\n"
    "                        requests to NAME; --count N of them (default 5)\n"
    "  --bench [NAME]        a quick figure: messages a second and request round\n"
    "                        trips, on this node or to the echo service NAME\n"
    "  --diagnose PEER       what the node knows of a peer (name, id or address)\n"
    "                        and why it is not up\n"
    "  --put KEY VALUE       put VALUE (\"-\": standard input) under KEY in the\n"
    "                        store; --ttl MS, --ephemeral (gone when this exits)\n"
    "  --get KEY             print the value of KEY\n"
    "  --del KEY             delete KEY\n"
    "  --keys PATTERN        the keys matching PATTERN, their versions and sizes\n"
    "  --watch-keys PATTERN  print the keys matching PATTERN, then each change\n"
    "Verb options:\n"
    "  --timeout MS          request timeout (default: the node's)\n"
    "  --count N             stop after N messages\n"
    "  --echo                with --listen: answer requests with their payload\n"
    "  --exec CMD            with --listen: answer requests with CMD's output\n"
    "                        (sh -c CMD, the payload on its standard input)\n"
    "  --json[=pretty]       machine-readable output\n"
    "  -h, --help            this text\n"
    "  -V, --version         the version\n";

enum {
    O_SOCKET = 256, O_NAME, O_SYSLOG, O_PORT, O_BIND, O_PEER, O_STATE_DIR, O_NO_MDNS,
    O_CONFIG, O_CLUSTER, O_AUTHORIZED_KEYS, O_ECHO, O_JSON, O_GROUP, O_USER, O_NO_DROP,
    O_NO_CONFIG,
    /* verbs */
    O_SERVICES, O_PEERS, O_CLIENTS, O_STATS, O_SEND, O_REQUEST, O_LISTEN, O_PUBLISH,
    O_SUBSCRIBE, O_WATCH, O_CHECK, O_PING, O_BENCH, O_MONITOR, O_DIAGNOSE,
    O_PUT, O_GET, O_DEL, O_KEYS, O_WATCH_KEYS,
    O_KEY, O_POLICY_CHECK, O_POLICY, O_EXEC, O_STORE_FSYNC, O_EPHEMERAL,
    /* numbers: see s_numbers */
    O_NUMBER = 512,
};

/* The options that take a number, each checked against its range. */
typedef struct {
    const char *name;
    size_t off;                 /* in options_t */
    int type;                   /* how it is kept there: */
    unsigned long long min, max;
    const char *want;
} number_t;

enum { T_UINT = 0, T_SIZE = 1, T_INT, T_LONG };     /* T_SIZE takes K/M/G suffixes */

#define CFG(f) offsetof(options_t, config.f)
static const number_t s_numbers[] = {
    { "max-message", CFG(max_message), 1, 1, 1ull << 30, "1 byte to 1G" },
    { "queue-limit", CFG(queue_limit), 1, 4096, 1ull << 34, "4K to 16G" },
    { "shm-threshold", CFG(shm_threshold), 1, 0, 1ull << 30, "0 to 1G" },
    { "shm-max-fds", CFG(shm_max_fds), 0, 1, 4096, "1 to 4096" },
    { "shm-queue-limit", CFG(shm_queue_limit), 1, 1, 1ull << 40, "1 byte to 1T" },
    { "max-clients", CFG(max_clients), 0, 1, 1000000, "1 to 1000000" },
    { "request-timeout", CFG(request_timeout), 0, 1, NODE_MAX_REQ_TIMEOUT, "1 to 86400000 ms" },
    { "heartbeat", CFG(heartbeat), 0, 10, 60000, "10 to 60000 ms" },
    { "window", CFG(window), 1, 64 * 1024, 1ull << 30, "64K to 1G" },
    { "max-clients-per-uid", CFG(max_clients_per_uid), 0, 1, 1000000, "1 to 1000000" },
    { "hello-timeout", CFG(hello_timeout), 0, 100, 3600000, "100 to 3600000 ms" },
    { "frame-timeout", CFG(frame_timeout), 0, 100, 3600000, "100 to 3600000 ms" },
    { "max-unfinished", CFG(max_unfinished), 1, 1u << 20, 1ull << 36, "1M to 64G" },
    { "max-names", CFG(max_names), 0, 1, 1000000, "1 to 1000000" },
    { "max-subscriptions", CFG(max_subs), 0, 1, 1000000, "1 to 1000000" },
    { "max-watches", CFG(max_watches), 0, 1, 1000000, "1 to 1000000" },
    { "max-requests", CFG(max_requests), 0, 1, 10000000, "1 to 10000000" },
    { "max-node-requests", CFG(max_node_requests), 0, 1, 100000000, "1 to 100000000" },
    { "max-peers", CFG(max_peers), 0, 1, 4096, "1 to 4096" },
    { "max-unverified", CFG(max_unverified), 0, 1, 256, "1 to 256" },
    { "max-peer-names", CFG(max_peer_names), 0, 1, 10000000, "1 to 10000000" },
    { "max-peer-subscriptions", CFG(max_peer_subs), 0, 1, 1000000, "1 to 1000000" },
    { "max-peer-requests", CFG(max_peer_requests), 0, 1, 10000000, "1 to 10000000" },
    { "store-max-keys", CFG(store_max_keys), 1, 1, 100000000, "1 to 100M" },
    { "store-max-bytes", CFG(store_max_bytes), 1, 1, 1ull << 40, "1 byte to 1T" },
    { "store-max-value", CFG(store_max_value), 1, 0, 16u << 20, "0 to 16M" },
    { "store-max-keys-per-uid", CFG(store_uid_keys), 1, 1, 100000000, "1 to 100M" },
    { "store-max-bytes-per-uid", CFG(store_uid_bytes), 1, 1, 1ull << 40, "1 byte to 1T" },
    { "store-tombstone-ms", CFG(store_tombstone_ms), 0, 1000, 30u * 86400 * 1000,
      "1000 to 2592000000 ms" },
    { "timeout", offsetof(options_t, cli.timeout_ms), T_INT, 1, NODE_MAX_REQ_TIMEOUT,
      "1 to 86400000 ms" },
    { "ttl", offsetof(options_t, cli.ttl_ms), T_UINT, 1, 4294967295ull, "1 to 4294967295 ms" },
    { "count", offsetof(options_t, cli.count), T_LONG, 1, 1000000000, "a positive number" },
};
#undef CFG
#define N_NUMBERS (sizeof s_numbers / sizeof s_numbers[0])

static const struct option s_named[] = {
    { "socket", required_argument, NULL, O_SOCKET },
    { "name", required_argument, NULL, O_NAME },
    { "syslog", no_argument, NULL, O_SYSLOG },
    { "verbose", no_argument, NULL, 'v' },
    { "services", no_argument, NULL, O_SERVICES },
    { "peers", no_argument, NULL, O_PEERS },
    { "clients", no_argument, NULL, O_CLIENTS },
    { "stats", no_argument, NULL, O_STATS },
    { "send", required_argument, NULL, O_SEND },
    { "request", required_argument, NULL, O_REQUEST },
    { "listen", required_argument, NULL, O_LISTEN },
    { "publish", required_argument, NULL, O_PUBLISH },
    { "subscribe", required_argument, NULL, O_SUBSCRIBE },
    { "watch", required_argument, NULL, O_WATCH },
    { "check", optional_argument, NULL, O_CHECK },
    { "ping", optional_argument, NULL, O_PING },
    { "bench", optional_argument, NULL, O_BENCH },
    { "monitor", optional_argument, NULL, O_MONITOR },
    { "diagnose", required_argument, NULL, O_DIAGNOSE },
    { "echo", no_argument, NULL, O_ECHO },
    { "exec", required_argument, NULL, O_EXEC },
    { "json", optional_argument, NULL, O_JSON },
    { "port", required_argument, NULL, O_PORT },
    { "bind", required_argument, NULL, O_BIND },
    { "peer", required_argument, NULL, O_PEER },
    { "state-dir", required_argument, NULL, O_STATE_DIR },
    { "no-mdns", no_argument, NULL, O_NO_MDNS },
    { "config", required_argument, NULL, O_CONFIG },
    { "no-config", no_argument, NULL, O_NO_CONFIG },
    { "cluster", required_argument, NULL, O_CLUSTER },
    { "authorized-keys", required_argument, NULL, O_AUTHORIZED_KEYS },
    { "key", no_argument, NULL, O_KEY },
    { "group", required_argument, NULL, O_GROUP },
    { "user", required_argument, NULL, O_USER },
    { "no-drop", no_argument, NULL, O_NO_DROP },
    { "policy", required_argument, NULL, O_POLICY },
    { "store-fsync", required_argument, NULL, O_STORE_FSYNC },
    { "put", required_argument, NULL, O_PUT },
    { "get", required_argument, NULL, O_GET },
    { "del", required_argument, NULL, O_DEL },
    { "keys", required_argument, NULL, O_KEYS },
    { "watch-keys", required_argument, NULL, O_WATCH_KEYS },
    { "ephemeral", no_argument, NULL, O_EPHEMERAL },
    { "policy-check", required_argument, NULL, O_POLICY_CHECK },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
};
#define N_NAMED (sizeof s_named / sizeof s_named[0])

/* getopt's table: the named options, then the numbers. */
static struct option s_options[N_NAMED + N_NUMBERS + 1];

static void s_build_table(void)
{
    memcpy(s_options, s_named, sizeof s_named);
    for (size_t i = 0; i < N_NUMBERS; i++)
        s_options[N_NAMED + i] = (struct option) {
            s_numbers[i].name, required_argument, NULL, O_NUMBER + (int) i };
    s_options[N_NAMED + N_NUMBERS] = (struct option) { NULL, 0, NULL, 0 };
}

/* Parses a number like 4096, or with suffixes 64K, 16M, 1G. Returns 0 or
   -EINVAL. */
static int s_parse_number(const char *s, int suffixes, unsigned long long min,
                          unsigned long long max, unsigned long long *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-' || *s == '+' || *s == ' ')
        return -EINVAL;
    unsigned long long mult = 1;
    if (suffixes && (*end == 'K' || *end == 'k'))
        mult = 1ull << 10;
    else if (suffixes && (*end == 'M' || *end == 'm'))
        mult = 1ull << 20;
    else if (suffixes && (*end == 'G' || *end == 'g'))
        mult = 1ull << 30;
    if (mult > 1)
        end++;
    if (*end || v > max / mult || v * mult < min)
        return -EINVAL;
    *ret = v * mult;
    return 0;
}

static int s_bad(const char *opt, const char *value, const char *want)
{
    fprintf(stderr, "ipc-node: bad value for --%s: '%s' (%s)\n", opt, value, want);
    return 2;
}

static int s_number(options_t *o, const number_t *n, const char *arg)
{
    unsigned long long v;
    if (s_parse_number(arg, n->type == T_SIZE, n->min, n->max, &v) < 0)
        return s_bad(n->name, arg, n->want);
    uint8_t *at = (uint8_t *) o + n->off;
    switch (n->type) {
    case T_SIZE: { size_t x = (size_t) v; memcpy(at, &x, sizeof x); break; }
    case T_INT: { int x = (int) v; memcpy(at, &x, sizeof x); break; }
    case T_LONG: { long x = (long) v; memcpy(at, &x, sizeof x); break; }
    default: { unsigned x = (unsigned) v; memcpy(at, &x, sizeof x); break; }
    }
    return 0;
}

static int s_config_file(options_t *o, const char *path);

/* A static peer: "tcp://host:port[#key]", or "host:port[#key]" for short. */
static int s_add_peer(options_t *o, const char *value)
{
    char ep[256], endpoint[128];
    uint8_t key[32];
    int has_key;
    int n = snprintf(ep, sizeof ep, strncmp(value, "tcp://", 6) == 0 ? "%s" : "tcp://%s", value);
    const char *hash = strchr(ep, '#');
    if (n < 0 || (size_t) n >= sizeof ep ||
        strcspn(ep + 6, " \t/") < (size_t) ((hash ? hash : ep + n) - ep - 6) ||
        keys_parse_peer(ep, endpoint, sizeof endpoint, key, &has_key) < 0)
        return s_bad("peer", value, "tcp://HOST:PORT or tcp://HOST:PORT#KEY "
                     "(KEY: 40 Z85 or 64 hex digits)");
    char **peers = realloc(o->peers, (o->npeers + 1) * sizeof *peers);
    if (!peers)
        return 1;
    o->peers = peers;
    if (!(peers[o->npeers] = strdup(ep)))
        return 1;
    o->npeers++;
    return 0;
}

/* A string option's value, kept (and freed by options_free). */
static const char *s_keep(options_t *o, const char *arg)
{
    if (!o->in_file)
        return arg;         /* argv outlives the options */
    char *copy = strdup(arg);
    char **kept = copy ? realloc(o->kept, (o->nkept + 1) * sizeof *kept) : NULL;
    if (!kept) {
        free(copy);
        return NULL;
    }
    o->kept = kept;
    o->kept[o->nkept++] = copy;
    return copy;
}

/* The name of option opt, for messages. */
static const char *s_opt_name(int opt)
{
    for (size_t i = 0; s_options[i].name; i++)
        if (s_options[i].val == opt)
            return s_options[i].name;
    return "?";
}

/* Options that only the node itself uses, and those only verbs use: on
   the command line, one given where it can do nothing is an error. */
static int s_node_only(int opt)
{
    if (opt >= O_NUMBER)
        return strcmp(s_opt_name(opt), "timeout") != 0 && strcmp(s_opt_name(opt), "count") != 0 &&
               strcmp(s_opt_name(opt), "ttl") != 0;
    return opt == O_NAME || opt == O_PORT || opt == O_BIND || opt == O_PEER ||
           opt == O_STATE_DIR || opt == O_NO_MDNS || opt == O_AUTHORIZED_KEYS ||
           opt == O_CLUSTER || opt == O_GROUP || opt == O_USER || opt == O_NO_DROP ||
           opt == O_POLICY || opt == O_SYSLOG || opt == O_STORE_FSYNC;
}

static int s_verb_only(int opt)
{
    return opt == O_ECHO || opt == O_JSON || opt == O_EXEC || opt == O_EPHEMERAL ||
           (opt >= O_NUMBER && !s_node_only(opt));
}

/* Applies one option. Returns 0, or an exit status (2: bad usage). */
static int s_option(options_t *o, int opt, const char *arg)
{
    node_config_t *config = &o->config;
    cli_t *cli = &o->cli;
    if (!o->in_file && !o->node_opt && s_node_only(opt))
        o->node_opt = s_opt_name(opt);
    if (!o->in_file && !o->verb_opt && s_verb_only(opt))
        o->verb_opt = s_opt_name(opt);
    if (opt >= O_NUMBER && opt < O_NUMBER + (int) N_NUMBERS)
        return s_number(o, &s_numbers[opt - O_NUMBER], arg);
    if (opt == O_POLICY_CHECK) {
        o->verbs++;
        o->policy_check = arg;
        return 0;
    }
    if (opt >= O_SERVICES && opt <= O_KEY) {
        static const verb_t verbs[] = {
            [O_SERVICES - O_SERVICES] = VERB_SERVICES, [O_PEERS - O_SERVICES] = VERB_PEERS,
            [O_CLIENTS - O_SERVICES] = VERB_CLIENTS, [O_STATS - O_SERVICES] = VERB_STATS,
            [O_SEND - O_SERVICES] = VERB_SEND, [O_REQUEST - O_SERVICES] = VERB_REQUEST,
            [O_LISTEN - O_SERVICES] = VERB_LISTEN, [O_PUBLISH - O_SERVICES] = VERB_PUBLISH,
            [O_SUBSCRIBE - O_SERVICES] = VERB_SUBSCRIBE, [O_WATCH - O_SERVICES] = VERB_WATCH,
            [O_CHECK - O_SERVICES] = VERB_CHECK, [O_PING - O_SERVICES] = VERB_PING,
            [O_BENCH - O_SERVICES] = VERB_BENCH, [O_MONITOR - O_SERVICES] = VERB_MONITOR,
            [O_DIAGNOSE - O_SERVICES] = VERB_DIAGNOSE,
            [O_PUT - O_SERVICES] = VERB_PUT, [O_GET - O_SERVICES] = VERB_GET,
            [O_DEL - O_SERVICES] = VERB_DEL, [O_KEYS - O_SERVICES] = VERB_KEYS,
            [O_WATCH_KEYS - O_SERVICES] = VERB_WATCH_KEYS,
        };
        o->verbs++;
        if (opt == O_KEY)
            o->key_verb = 1;
        else {
            cli->verb = verbs[opt - O_SERVICES];
            cli->target = arg;
        }
        return 0;
    }
    if (arg && !(arg = s_keep(o, arg)))
        return 1;
    switch (opt) {
    case O_SOCKET: o->socket_opt = arg; break;
    case O_NAME: o->name_opt = arg; break;
    case O_PORT: {
        unsigned long long v;
        if (s_parse_number(arg, 0, 0, 65535, &v) < 0)
            return s_bad("port", arg, "0 to 65535");
        config->port = (unsigned) v;
        break;
    }
    case O_BIND:
        if (strlen(arg) >= sizeof config->bind || !*arg || strpbrk(arg, " \t/"))
            return s_bad("bind", arg, "an address or interface, or *");
        strcpy(config->bind, arg);
        break;
    case O_PEER:
        return s_add_peer(o, arg);
    case O_STATE_DIR:
        if (strlen(arg) >= sizeof config->state_dir || arg[0] != '/')
            return s_bad("state-dir", arg, "an absolute path");
        strcpy(config->state_dir, arg);
        break;
    case O_NO_MDNS: config->no_mdns = 1; break;
    case O_STORE_FSYNC: {
        static const char *const modes[] = { "batch", "always", "never", "off" };
        int i = 0;
        while (i < 4 && strcmp(arg, modes[i]) != 0)
            i++;
        if (i == 4)
            return s_bad("store-fsync", arg, "always, batch, never or off");
        config->store_fsync = i;
        break;
    }
    case O_AUTHORIZED_KEYS: {
        char path[PATH_MAX];
        if (!realpath(arg, path) || strlen(path) >= sizeof config->authorized_keys)
            return s_bad("authorized-keys", arg, "an existing directory");
        strcpy(config->authorized_keys, path);
        break;
    }
    case O_CLUSTER:
        if (strlen(arg) >= sizeof config->cluster || wire_check_name(arg, strlen(arg)) < 0)
            return s_bad("cluster", arg, "1-63 of A-Z a-z 0-9 . _ - /");
        strcpy(config->cluster, arg);
        break;
    case O_GROUP:
    case O_USER: {
        char *to = opt == O_GROUP ? config->group : config->user;
        if (strlen(arg) >= sizeof config->group || !*arg || strpbrk(arg, " \t/:"))
            return s_bad(opt == O_GROUP ? "group" : "user", arg, "a group or user name");
        strcpy(to, arg);
        if (opt == O_USER)
            config->no_drop = 0;
        break;
    }
    case O_NO_DROP: config->no_drop = 1; config->user[0] = 0; break;
    case O_POLICY: {
        char path[PATH_MAX];
        if (!realpath(arg, path) || strlen(path) >= sizeof config->policy)
            return s_bad("policy", arg, "an existing file of rules (see docs/policy.md)");
        strcpy(config->policy, path);
        break;
    }
    case O_CONFIG: return s_config_file(o, arg);
    case O_NO_CONFIG: break;
    case O_SYSLOG: o->use_syslog = 1; break;
    case 'v': config->verbose = cli->verbose = 1; break;
    case O_ECHO: cli->echo = 1; break;
    case O_EPHEMERAL: cli->ephemeral = 1; break;
    case O_EXEC: cli->exec = arg; break;
    case O_JSON:
        if (arg && strcmp(arg, "pretty") != 0)
            return s_bad("json", arg, "nothing, or =pretty");
        cli->json = arg ? 2 : 1;
        break;
    default: return 2;
    }
    return 0;
}

/* One "option value" line of a config file (NUL-terminated, any length). */
static int s_config_line(options_t *o, char *line, const char *path, int lineno)
{
    /* A '#' at the start of a line or after a blank starts a comment; one
       inside a word is a peer's key: tcp://host:port#KEY. */
    for (char *c = line; *c; c++)
        if (*c == '#' && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
            *c = 0;
            break;
        }
    char *key = line + strspn(line, " \t\r");
    if (!*key)
        return 0;
    char *value = key + strcspn(key, " \t\r");
    if (*value)
        *value++ = 0;
    value += strspn(value, " \t");
    for (char *end = value + strlen(value);
         end > value && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r');)
        *--end = 0;
    const struct option *opt = s_options;
    while (opt->name && strcmp(opt->name, key) != 0)
        opt++;
    if (!opt->name) {
        fprintf(stderr, "ipc-node: %s:%d: unknown option '%s'\n", path, lineno, key);
        return 2;
    }
    if ((opt->val >= O_SERVICES && opt->val <= O_POLICY_CHECK) || opt->val == 'h' ||
        opt->val == 'V') {
        fprintf(stderr, "ipc-node: %s:%d: '%s' is a verb: give it on the command line\n",
                path, lineno, key);
        return 2;
    }
    if ((opt->has_arg == required_argument) != (*value != 0)) {
        fprintf(stderr, "ipc-node: %s:%d: '%s' %s\n", path, lineno, key,
                *value ? "takes no value" : "needs a value");
        return 2;
    }
    int rc = s_option(o, opt->val, *value ? value : NULL);
    if (rc)
        fprintf(stderr, "ipc-node: in %s:%d\n", path, lineno);
    return rc;
}

/* Reads "option value" lines (the long options without "--"). Only a
   regular file of at most CONFIG_MAX bytes is read, whole. */
#define CONFIG_MAX  (1u << 20)

static int s_config_file(options_t *o, const char *path)
{
    if (o->depth > 4) {
        fprintf(stderr, "ipc-node: %s: config files include each other\n", path);
        return 2;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        fprintf(stderr, "ipc-node: cannot read %s: %s\n", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return 2;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > CONFIG_MAX) {
        fprintf(stderr, "ipc-node: %s: %s\n", path,
                S_ISDIR(st.st_mode) ? "is a directory, not a config file" :
                !S_ISREG(st.st_mode) ? "is not a regular file" :
                "is larger than 1 MiB: not a config file");
        close(fd);
        return 2;
    }
    size_t len;
    char *text = path_read(fd, (size_t) st.st_size, &len);
    close(fd);
    if (!text) {
        fprintf(stderr, "ipc-node: %s: out of memory\n", path);
        return 1;
    }
    if (memchr(text, 0, len)) {
        fprintf(stderr, "ipc-node: %s: holds a NUL byte: not a config file\n", path);
        free(text);
        return 2;
    }
    int rc = 0, lineno = 0, in_file = o->in_file;
    o->depth++;
    o->in_file = 1;
    for (char *line = text, *next; rc == 0 && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        rc = s_config_line(o, line, path, ++lineno);
    }
    o->in_file = in_file;
    o->depth--;
    free(text);
    return rc;
}

/* The state directory: /var/lib/ipc-node for root, else under
   $XDG_STATE_HOME or ~/.local/state. */
int options_default_state_dir(char *buf, size_t size)
{
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;
    if (geteuid() == 0)
        n = snprintf(buf, size, "/var/lib/ipc-node");
    else if (xdg && *xdg == '/')
        n = snprintf(buf, size, "%s/ipc-node", xdg);
    else if (home && *home == '/')
        n = snprintf(buf, size, "%s/.local/state/ipc-node", home);
    else
        n = snprintf(buf, size, "/tmp/ipc-node-state-%u", (unsigned) geteuid());
    return n < 0 || (size_t) n >= size ? -1 : 0;
}


int options_parse(options_t *o, int argc, char **argv)
{
    *o = (options_t) {
        .config = {
            .max_message = NODE_DEFAULT_MAX_MESSAGE,
            .queue_limit = NODE_DEFAULT_QUEUE_LIMIT,
            .shm_threshold = NODE_DEFAULT_SHM_THRESHOLD,
            .shm_max_fds = NODE_DEFAULT_SHM_FDS,
            .shm_queue_limit = NODE_DEFAULT_SHM_QUEUE,
            .max_clients = NODE_DEFAULT_MAX_CLIENTS,
            .request_timeout = NODE_DEFAULT_REQ_TIMEOUT,
            .bind = "*",
            .port = NODE_DEFAULT_PORT,
            .heartbeat = NODE_DEFAULT_HEARTBEAT,
            .window = NODE_DEFAULT_WINDOW,
            .cluster = NODE_DEFAULT_CLUSTER,
            .max_clients_per_uid = NODE_DEFAULT_PER_UID,
            .hello_timeout = NODE_DEFAULT_HELLO_TIMEOUT,
            .frame_timeout = NODE_DEFAULT_FRAME_TIMEOUT,
            .max_unfinished = NODE_DEFAULT_UNFINISHED,
            .max_names = NODE_DEFAULT_PER_CLIENT,
            .max_subs = NODE_DEFAULT_PER_CLIENT,
            .max_watches = NODE_DEFAULT_PER_CLIENT,
            .max_requests = NODE_DEFAULT_PER_CLIENT,
            .max_node_requests = NODE_DEFAULT_NODE_REQUESTS,
            .max_peers = NODE_DEFAULT_MAX_PEERS,
            .max_unverified = NODE_DEFAULT_UNVERIFIED,
            .max_peer_names = NODE_DEFAULT_PEER_NAMES,
            .max_peer_subs = NODE_DEFAULT_PEER_SUBS,
            .max_peer_requests = NODE_DEFAULT_PEER_REQUESTS,
            .store_max_keys = NODE_DEFAULT_STORE_KEYS,
            .store_max_bytes = NODE_DEFAULT_STORE_BYTES,
            .store_max_value = NODE_DEFAULT_STORE_VALUE,
            .store_uid_keys = NODE_DEFAULT_STORE_UID_KEYS,
            .store_uid_bytes = NODE_DEFAULT_STORE_UID_BYTES,
            .store_tombstone_ms = NODE_DEFAULT_TOMBSTONE_MS,
            .store_fsync = NODE_FSYNC_BATCH,
        },
    };
    s_build_table();
    cli_t *cli = &o->cli;
    /* The default config file, before the command line, which overrides
       it; not when the command line names one or says --no-config. */
    int named = 0;
    for (int i = 1; i < argc; i++)
        named |= strncmp(argv[i], "--config", 8) == 0 || strcmp(argv[i], "--no-config") == 0;
    struct stat st;
    if (!named && geteuid() == 0 && stat(DEFAULT_CONFIG, &st) == 0) {
        int rc = s_config_file(o, DEFAULT_CONFIG);
        if (rc)
            return rc;
    }
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "vhV", s_options, NULL)) != -1) {
        if (opt == 'h') {
            fputs(s_usage, stdout);
            return 0;
        }
        if (opt == 'V') {
            printf("ipc-node %s\n", PACKAGE_VERSION);
            return 0;
        }
        if (opt == '?' || opt == ':') {
            if (optopt && optopt < 256)
                fprintf(stderr, "ipc-node: option -%c %s\n", optopt,
                        strchr("vhV", optopt) ? "takes no value" : "is unknown");
            else
                fprintf(stderr, "ipc-node: option '%s' is unknown or lacks its value\n",
                        argv[optind - 1]);
            fprintf(stderr, "Try 'ipc-node --help'.\n");
            return 2;
        }
        int rc = s_option(o, opt, optarg);
        if (rc)
            return rc;
    }
    if (o->verbs > 1) {
        fprintf(stderr, "ipc-node: give one verb at a time\n");
        return 2;
    }
    int verb = cli->verb != VERB_NONE || o->key_verb || o->policy_check;
    if (!verb && o->verb_opt) {
        fprintf(stderr, "ipc-node: --%s goes with a verb (--services, --send, --listen, ...); "
                "it does nothing to the node\nTry 'ipc-node --help'.\n", o->verb_opt);
        return 2;
    }
    if (verb && o->node_opt && !(o->key_verb && strcmp(o->node_opt, "state-dir") == 0)) {
        fprintf(stderr, "ipc-node: --%s is an option of the node itself: it does nothing to "
                "a verb (give it to the node, or in its config file)\n", o->node_opt);
        return 2;
    }
    /* The verbs whose argument may be left out take the next word. */
    int optional = cli->verb == VERB_CHECK || cli->verb == VERB_PING ||
                   cli->verb == VERB_BENCH || cli->verb == VERB_MONITOR;
    if (optional && !cli->target && optind < argc && argv[optind][0] != '-')
        cli->target = argv[optind++];
    if (cli->exec && cli->verb != VERB_LISTEN) {
        fprintf(stderr, "ipc-node: --exec goes with --listen\n");
        return 2;
    }
    if (cli->exec && cli->echo) {
        fprintf(stderr, "ipc-node: --exec or --echo, not both\n");
        return 2;
    }
    int want_data = cli->verb == VERB_SEND || cli->verb == VERB_REQUEST ||
                    cli->verb == VERB_PUBLISH || cli->verb == VERB_PUT;
    if (want_data && optind < argc)
        cli->data = argv[optind++];
    if (want_data && !cli->data) {
        fprintf(stderr, "ipc-node: %s needs DATA (\"-\" for standard input)\n", argv[1]);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "ipc-node: unexpected argument '%s'\nTry 'ipc-node --help'.\n", argv[optind]);
        return 2;
    }
    cli->socket = o->socket_opt;
    return -1;
}

int options_daemon(options_t *o)
{
    node_config_t *config = &o->config;
    if (o->socket_opt) {
        if (strlen(o->socket_opt) >= sizeof config->socket_path) {
            fprintf(stderr, "ipc-node: socket path too long: %s\n", o->socket_opt);
            return 2;
        }
        strcpy(config->socket_path, o->socket_opt);
    } else if (getenv("IPCNET_SOCKET") && *getenv("IPCNET_SOCKET")) {
        if (snprintf(config->socket_path, sizeof config->socket_path, "%s",
                     getenv("IPCNET_SOCKET")) >= (int) sizeof config->socket_path) {
            fprintf(stderr, "ipc-node: $IPCNET_SOCKET is too long\n");
            return 2;
        }
    } else if (paths_own_socket(config->socket_path, sizeof config->socket_path) < 0) {
        fprintf(stderr, "ipc-node: the default socket path is too long; use --socket\n");
        return 2;
    }
    if (!config->state_dir[0] &&
        options_default_state_dir(config->state_dir, sizeof config->state_dir) < 0) {
        fprintf(stderr, "ipc-node: the default state directory is too long; use --state-dir\n");
        return 2;
    }
    if (o->name_opt) {
        if (strlen(o->name_opt) > NODE_NAME_MAX || wire_check_name(o->name_opt, strlen(o->name_opt)) < 0) {
            fprintf(stderr, "ipc-node: bad node name '%s' (1-%d of A-Z a-z 0-9 . _ -)\n",
                    o->name_opt, NODE_NAME_MAX);
            return 2;
        }
        strcpy(config->name, o->name_opt);
    } else {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        host[NODE_NAME_MAX] = 0;
        char *dot = strchr(host, '.');
        if (dot)
            *dot = 0;
        strcpy(config->name, wire_check_name(host, strlen(host)) == 0 ? host : "localhost");
    }
    config->peers = o->peers;
    config->npeers = o->npeers;
    return 0;
}

void options_free(options_t *o)
{
    for (size_t i = 0; i < o->npeers; i++)
        free(o->peers[i]);
    free(o->peers);
    for (size_t i = 0; i < o->nkept; i++)
        free(o->kept[i]);
    free(o->kept);
    o->peers = o->kept = NULL;
    o->npeers = o->nkept = 0;
}
