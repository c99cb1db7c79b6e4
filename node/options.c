/*  options.c: the option table, --config files, and the checks of every
    value. */

#include "options.h"
#include "ipcnet.h"
#include "keys.h"
#include "wire.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "  --syslog              log to syslog as well as stderr\n"
    "  -v, --verbose         log every client that connects\n"
    "\n"
    "Verbs:\n"
    "  --services            names and who holds them\n"
    "  --peers               known nodes\n"
    "  --clients             connected clients\n"
    "  --stats               counters\n"
    "  --key                 print this node's public key (from --state-dir)\n"
    "  --send NAME DATA      send DATA (\"-\": standard input) to NAME\n"
    "  --request NAME DATA   send a request and print the reply\n"
    "  --listen NAME         hold NAME and print each message received\n"
    "  --publish TOPIC DATA  publish DATA on TOPIC\n"
    "  --subscribe PATTERN   print each publication matching PATTERN\n"
    "  --watch PATTERN       print names matching PATTERN as they come and go\n"
    "Verb options:\n"
    "  --timeout MS          request timeout (default: the node's)\n"
    "  --count N             stop after N messages\n"
    "  --echo                with --listen: answer requests with their payload\n"
    "  --json                machine-readable output\n"
    "  -h, --help            this text\n"
    "  -V, --version         the version\n";

enum {
    O_SOCKET = 256, O_NAME, O_MAX_MESSAGE, O_QUEUE_LIMIT, O_MAX_CLIENTS, O_REQ_TIMEOUT,
    O_SYSLOG, O_SERVICES, O_PEERS, O_CLIENTS, O_STATS, O_SEND, O_REQUEST, O_LISTEN,
    O_PUBLISH, O_SUBSCRIBE, O_WATCH, O_TIMEOUT, O_COUNT, O_ECHO, O_JSON,
    O_PORT, O_BIND, O_PEER, O_STATE_DIR, O_HEARTBEAT, O_WINDOW, O_NO_MDNS, O_CONFIG, O_CLUSTER,
    O_AUTHORIZED_KEYS, O_KEY,
};

static const struct option s_options[] = {
    { "socket", required_argument, NULL, O_SOCKET },
    { "name", required_argument, NULL, O_NAME },
    { "max-message", required_argument, NULL, O_MAX_MESSAGE },
    { "queue-limit", required_argument, NULL, O_QUEUE_LIMIT },
    { "max-clients", required_argument, NULL, O_MAX_CLIENTS },
    { "request-timeout", required_argument, NULL, O_REQ_TIMEOUT },
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
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "count", required_argument, NULL, O_COUNT },
    { "echo", no_argument, NULL, O_ECHO },
    { "json", no_argument, NULL, O_JSON },
    { "port", required_argument, NULL, O_PORT },
    { "bind", required_argument, NULL, O_BIND },
    { "peer", required_argument, NULL, O_PEER },
    { "state-dir", required_argument, NULL, O_STATE_DIR },
    { "heartbeat", required_argument, NULL, O_HEARTBEAT },
    { "window", required_argument, NULL, O_WINDOW },
    { "no-mdns", no_argument, NULL, O_NO_MDNS },
    { "config", required_argument, NULL, O_CONFIG },
    { "cluster", required_argument, NULL, O_CLUSTER },
    { "authorized-keys", required_argument, NULL, O_AUTHORIZED_KEYS },
    { "key", no_argument, NULL, O_KEY },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* Parses a size like 4096, 64K, 16M or 1G. Returns 0 or -EINVAL. */
static int s_parse_size(const char *s, size_t min, size_t max, size_t *ret)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *s == '-')
        return -EINVAL;
    unsigned long long mult = 1;
    if (*end == 'K' || *end == 'k')
        mult = 1ull << 10;
    else if (*end == 'M' || *end == 'm')
        mult = 1ull << 20;
    else if (*end == 'G' || *end == 'g')
        mult = 1ull << 30;
    if (mult > 1)
        end++;
    if (*end || v > max / mult || v * mult < min)
        return -EINVAL;
    *ret = (size_t) (v * mult);
    return 0;
}

static int s_parse_long(const char *s, long min, long max, long *ret)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -EINVAL;
    *ret = v;
    return 0;
}

static int s_bad(const char *opt, const char *value, const char *want)
{
    fprintf(stderr, "ipc-node: bad value for %s: '%s' (%s)\n", opt, value, want);
    return 2;
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
        return s_bad("--peer", value, "tcp://HOST:PORT or tcp://HOST:PORT#KEY "
                     "(KEY: 40 Z85 or 64 hex digits)");
    char **peers = realloc(o->peers, (o->npeers + 1) * sizeof *peers);
    if (!peers || !(peers[o->npeers] = strdup(ep))) {
        free(peers == o->peers ? NULL : peers);
        return 1;
    }
    o->peers = peers;
    o->npeers++;
    return 0;
}

/* Applies one option. Returns 0, or an exit status (2: bad usage). */
static int s_option(options_t *o, int opt, const char *arg)
{
    node_config_t *config = &o->config;
    cli_t *cli = &o->cli;
    long n;
    switch (opt) {
    case O_SOCKET: o->socket_opt = arg; break;
    case O_NAME: o->name_opt = arg; break;
    case O_MAX_MESSAGE:
        if (s_parse_size(arg, 1, 1ull << 30, &config->max_message) < 0)
            return s_bad("--max-message", arg, "1 byte to 1G");
        break;
    case O_QUEUE_LIMIT:
        if (s_parse_size(arg, 4096, 1ull << 34, &config->queue_limit) < 0)
            return s_bad("--queue-limit", arg, "4K to 16G");
        break;
    case O_MAX_CLIENTS:
        if (s_parse_long(arg, 1, 1000000, &n) < 0)
            return s_bad("--max-clients", arg, "1 to 1000000");
        config->max_clients = (unsigned) n;
        break;
    case O_REQ_TIMEOUT:
        if (s_parse_long(arg, 1, NODE_MAX_REQ_TIMEOUT, &n) < 0)
            return s_bad("--request-timeout", arg, "1 to 86400000 ms");
        config->request_timeout = (unsigned) n;
        break;
    case O_PORT:
        if (s_parse_long(arg, 0, 65535, &n) < 0)
            return s_bad("--port", arg, "0 to 65535");
        config->port = (unsigned) n;
        break;
    case O_BIND:
        if (strlen(arg) >= sizeof config->bind || !*arg || strpbrk(arg, " \t/"))
            return s_bad("--bind", arg, "an address or interface, or *");
        strcpy(config->bind, arg);
        break;
    case O_PEER:
        return s_add_peer(o, arg);
    case O_STATE_DIR:
        if (strlen(arg) >= sizeof config->state_dir || arg[0] != '/')
            return s_bad("--state-dir", arg, "an absolute path");
        strcpy(config->state_dir, arg);
        break;
    case O_HEARTBEAT:
        if (s_parse_long(arg, 10, 60000, &n) < 0)
            return s_bad("--heartbeat", arg, "10 to 60000 ms");
        config->heartbeat = (unsigned) n;
        break;
    case O_WINDOW:
        if (s_parse_size(arg, 64 * 1024, 1ull << 30, &config->window) < 0)
            return s_bad("--window", arg, "64K to 1G");
        break;
    case O_NO_MDNS: config->no_mdns = 1; break;
    case O_AUTHORIZED_KEYS: {
        char path[PATH_MAX];
        if (!realpath(arg, path) || strlen(path) >= sizeof config->authorized_keys)
            return s_bad("--authorized-keys", arg, "an existing directory");
        strcpy(config->authorized_keys, path);
        break;
    }
    case O_KEY: o->key_verb = 1; o->verbs++; break;
    case O_CLUSTER:
        if (strlen(arg) >= sizeof config->cluster || wire_check_name(arg, strlen(arg)) < 0)
            return s_bad("--cluster", arg, "1-63 of A-Z a-z 0-9 . _ - /");
        strcpy(config->cluster, arg);
        break;
    case O_CONFIG: return s_config_file(o, arg);
    case O_SYSLOG: o->use_syslog = 1; break;
    case 'v': config->verbose = 1; break;
    case O_SERVICES: cli->verb = VERB_SERVICES; o->verbs++; break;
    case O_PEERS: cli->verb = VERB_PEERS; o->verbs++; break;
    case O_CLIENTS: cli->verb = VERB_CLIENTS; o->verbs++; break;
    case O_STATS: cli->verb = VERB_STATS; o->verbs++; break;
    case O_SEND: cli->verb = VERB_SEND; cli->target = arg; o->verbs++; break;
    case O_REQUEST: cli->verb = VERB_REQUEST; cli->target = arg; o->verbs++; break;
    case O_LISTEN: cli->verb = VERB_LISTEN; cli->target = arg; o->verbs++; break;
    case O_PUBLISH: cli->verb = VERB_PUBLISH; cli->target = arg; o->verbs++; break;
    case O_SUBSCRIBE: cli->verb = VERB_SUBSCRIBE; cli->target = arg; o->verbs++; break;
    case O_WATCH: cli->verb = VERB_WATCH; cli->target = arg; o->verbs++; break;
    case O_TIMEOUT:
        if (s_parse_long(arg, 1, NODE_MAX_REQ_TIMEOUT, &n) < 0)
            return s_bad("--timeout", arg, "1 to 86400000 ms");
        cli->timeout_ms = (int) n;
        break;
    case O_COUNT:
        if (s_parse_long(arg, 1, 1000000000L, &n) < 0)
            return s_bad("--count", arg, "a positive number");
        cli->count = n;
        break;
    case O_ECHO: cli->echo = 1; break;
    case O_JSON: cli->json = 1; break;
    default: return 2;
    }
    return 0;
}

/* Reads "option value" lines (the long options without "--"); a '#' at
   the start of a line or after a blank starts a comment (one inside a
   word is a peer's key: tcp://host:port#KEY). The strings are kept for
   the life of the process. */
static int s_config_file(options_t *o, const char *path)
{
    if (o->depth++ > 4) {
        fprintf(stderr, "ipc-node: %s: config files include each other\n", path);
        return 2;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ipc-node: cannot read %s: %s\n", path, strerror(errno));
        return 2;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = 0;
        for (char *c = line; *c; c++)
            if (*c == '#' && (c == line || c[-1] == ' ' || c[-1] == '\t')) {
                *c = 0;
                break;
            }
        char *key = line + strspn(line, " \t");
        if (!*key)
            continue;
        char *value = key + strcspn(key, " \t");
        if (*value)
            *value++ = 0;
        value += strspn(value, " \t");
        for (char *end = value + strlen(value); end > value && (end[-1] == ' ' || end[-1] == '\t');)
            *--end = 0;
        const struct option *opt = s_options;
        while (opt->name && strcmp(opt->name, key) != 0)
            opt++;
        if (!opt->name || opt->val < O_SOCKET || opt->val == O_SERVICES ||
            (opt->val >= O_SERVICES && opt->val <= O_JSON) || opt->val == O_KEY) {
            fprintf(stderr, "ipc-node: %s:%d: unknown option '%s'\n", path, lineno, key);
            rc = 2;
        } else if ((opt->has_arg == required_argument) != (*value != 0)) {
            fprintf(stderr, "ipc-node: %s:%d: '%s' %s\n", path, lineno, key,
                    *value ? "takes no value" : "needs a value");
            rc = 2;
        } else {
            char *copy = strdup(value);
            rc = copy ? s_option(o, opt->val, copy) : 1;
            if (rc)
                fprintf(stderr, "ipc-node: in %s:%d\n", path, lineno);
        }
    }
    fclose(f);
    o->depth--;
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
            .max_clients = NODE_DEFAULT_MAX_CLIENTS,
            .request_timeout = NODE_DEFAULT_REQ_TIMEOUT,
            .bind = "*",
            .port = NODE_DEFAULT_PORT,
            .heartbeat = NODE_DEFAULT_HEARTBEAT,
            .window = NODE_DEFAULT_WINDOW,
            .cluster = NODE_DEFAULT_CLUSTER,
        },
    };
    cli_t *cli = &o->cli;
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
    int want_data = cli->verb == VERB_SEND || cli->verb == VERB_REQUEST || cli->verb == VERB_PUBLISH;
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
    } else if (ipcnet_default_socket(config->socket_path, sizeof config->socket_path) < 0) {
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
    o->peers = NULL;
    o->npeers = 0;
}
