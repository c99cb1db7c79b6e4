/*  cli.c: ipc-node --services, --send, --listen ... through libipcnet.

    Plain output is for people: aligned columns, one line a message. With
    --json every listing is one JSON array and every message one JSON
    object a line, valid whatever the bytes (json.c). Failures print one
    line on stderr and exit with status 1. The verbs that measure or
    check (--ping, --bench, --check, --listen --exec) are in cli_tools.c. */

#include "cli.h"
#include "ipcnet.h"
#include "json.h"
#include "log.h"
#include "paths.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define FIELDS_MAX 10

void cli_failed(ipcnet_t *c, const char *what, const char *target, int rc)
{
    /* The node's words, when it gave any ("no such node", the rule that
       denied it, ...). */
    const char *why = c ? ipcnet_last_error(c) : "";
    fprintf(stderr, "ipc-node: cannot %s '%s': %s%s%s%s\n", what, target,
            rc == -ENOENT ? "no such name: nobody holds it" : ipcnet_strerror(rc),
            *why ? " (" : "", why, *why ? ")" : "");
}

/* --- listings ---------------------------------------------------------------- */

/* Splits text into lines of up to FIELDS_MAX tab-separated fields (in
   place; "" past a line's last field). Returns the rows, in *ret_fields
   (freed by the caller; NULL and 0 when out of memory). */
static size_t s_split(char *text, char *(**ret_fields)[FIELDS_MAX])
{
    size_t rows = 0, maxrows = 1;
    for (const char *p = text; *p; p++)
        maxrows += *p == '\n';
    char *(*fields)[FIELDS_MAX] = *ret_fields = calloc(maxrows, sizeof *fields);
    if (!fields)
        return 0;
    for (char *line = text, *next; line && *line && rows < maxrows; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        size_t col = 0;
        for (char *f = line, *tab; f && col < FIELDS_MAX; f = tab) {
            tab = strchr(f, '\t');
            if (tab)
                *tab++ = 0;
            fields[rows][col++] = f;
        }
        for (size_t i = col; i < FIELDS_MAX; i++)
            fields[rows][i] = "";
        rows++;
    }
    return rows;
}

/* A column of a listing: its name, and whether its values are numbers. */
typedef struct {
    const char *name;
    int numeric;
} column_t;

static const column_t s_cols_services[] = {
    { "name", 0 }, { "node", 0 }, { "holder", 0 }, { "label", 0 }, { "user", 0 },
};
static const column_t s_cols_peers[] = {
    { "name", 0 }, { "id", 0 }, { "address", 0 }, { "source", 0 }, { "state", 0 },
    { "rtt_us", 1 }, { "last_seen_ms", 1 }, { "key", 0 }, { "reason", 0 },
};
static const column_t s_cols_clients[] = {
    { "address", 0 }, { "label", 0 }, { "pid", 1 }, { "uid", 1 }, { "queued", 1 },
    { "user", 0 },
};

/* Prints a listing as a table or as a JSON array of objects. */
static void s_print_table(char *text, const column_t *cols, size_t ncols, int json)
{
    char *(*fields)[FIELDS_MAX];
    size_t rows = s_split(text, &fields);
    if (!fields)
        return;
    if (json) {
        json_open('[');
        for (size_t r = 0; r < rows; r++) {
            json_open('{');
            for (size_t c = 0; c < ncols; c++) {
                json_key(cols[c].name);
                json_field(fields[r][c], cols[c].numeric);
            }
            json_close();
        }
        json_close();
        json_end();
    } else {
        size_t width[FIELDS_MAX] = { 0 };
        for (size_t c = 0; c < ncols; c++) {
            width[c] = strlen(cols[c].name);
            for (size_t r = 0; r < rows; r++)
                if (strlen(fields[r][c]) > width[c])
                    width[c] = strlen(fields[r][c]);
        }
        for (size_t c = 0; c < ncols; c++) {
            for (const char *h = cols[c].name; *h; h++)
                putchar(*h >= 'a' && *h <= 'z' ? *h - 32 : *h);
            printf("%*s", c + 1 < ncols ? (int) (width[c] - strlen(cols[c].name) + 2) : 0, "");
        }
        putchar('\n');
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < ncols; c++)
                printf(c + 1 < ncols ? "%-*s  " : "%-*s\n",
                       c + 1 < ncols ? (int) width[c] : 0, fields[r][c]);
    }
    free(fields);
}

/* Prints key/value lines as aligned text or as one JSON object. */
static void s_print_stats(char *text, int json)
{
    char *(*fields)[FIELDS_MAX];
    size_t rows = s_split(text, &fields);
    if (!fields)
        return;
    if (json)
        json_open('{');
    for (size_t r = 0; r < rows; r++) {
        if (json) {
            json_key(fields[r][0]);
            json_field(fields[r][1], 1);
        } else
            printf("%-18s %s\n", fields[r][0], fields[r][1]);
    }
    if (json) {
        json_close();
        json_end();
    }
    free(fields);
}

static int s_listing(ipcnet_t *c, const cli_t *cli)
{
    int what = cli->verb == VERB_SERVICES ? IPCNET_Q_SERVICES :
               cli->verb == VERB_PEERS ? IPCNET_Q_PEERS :
               cli->verb == VERB_CLIENTS ? IPCNET_Q_CLIENTS : IPCNET_Q_STATS;
    char *text;
    int rc = ipcnet_query(c, what, &text);
    if (rc < 0) {
        fprintf(stderr, "ipc-node: cannot list: %s\n", ipcnet_strerror(rc));
        return 1;
    }
    if (what == IPCNET_Q_SERVICES)
        s_print_table(text, s_cols_services, 5, cli->json);
    else if (what == IPCNET_Q_PEERS)
        s_print_table(text, s_cols_peers, 9, cli->json);
    else if (what == IPCNET_Q_CLIENTS)
        s_print_table(text, s_cols_clients, 6, cli->json);
    else
        s_print_stats(text, cli->json);
    free(text);
    return 0;
}

/* --- messages ------------------------------------------------------------------ */

static const char *const s_kinds[] = {
    "", "send", "request", "reply", "publish", "event", "error", "monitor",
};

/* What an event is about and what happened: name up/down, peer up/down,
   this node down/up (a reconnecting handle). */
static void s_event_words(const ipcnet_msg_t *m, const char **what, const char **how)
{
    *what = m->event == IPCNET_EV_NAME_UP || m->event == IPCNET_EV_NAME_DOWN ? "name"
          : m->event == IPCNET_EV_PEER_UP || m->event == IPCNET_EV_PEER_DOWN ? "peer" : "node";
    *how = m->event == IPCNET_EV_NAME_UP || m->event == IPCNET_EV_PEER_UP ||
           m->event == IPCNET_EV_NODE_UP ? "up" : "down";
}

static void s_json_sender(const ipcnet_msg_t *m)
{
    json_key("from");
    json_cstring(m->source[0] ? m->source : NULL);
    json_key("uid");
    json_number(m->uid);
    json_key("user");
    json_cstring(m->user[0] ? m->user : NULL);
    json_key("node");
    json_cstring(m->node[0] ? m->node : NULL);
    json_key("node_id");
    json_cstring(m->node_id[0] ? m->node_id : NULL);
}

static void s_json_data(const void *data, size_t size)
{
    json_key("data");
    if (json_payload(data, size)) {
        json_key("encoding");
        json_cstring("base64");
    }
}

static void s_json_msg(const ipcnet_msg_t *m)
{
    json_open('{');
    json_key("kind");
    json_cstring(s_kinds[m->kind]);
    if (m->kind == IPCNET_MSG_EVENT) {
        const char *what, *how;
        s_event_words(m, &what, &how);
        json_key("event");
        json_cstring(how);
        json_key("about");
        json_cstring(what);
        json_key("name");
        json_cstring(m->name[0] ? m->name : NULL);
        json_key("node");
        json_cstring(m->node[0] ? m->node : NULL);
        if (m->event == IPCNET_EV_NODE_UP) {
            json_key("gap_ms");
            json_number(m->gap_ms);
        }
    } else if (m->kind == IPCNET_MSG_MONITOR) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char when[32];
        snprintf(when, sizeof when, "%lld.%06ld", (long long) ts.tv_sec, ts.tv_nsec / 1000);
        json_key("time");
        json_raw(when);
        json_key("what");
        json_cstring(m->event ? s_kinds[m->event] : "lost");
        if (m->event) {
            json_key("to");
            json_cstring(m->name);
            s_json_sender(m);
            json_key("size");
            json_number((long long) m->total);
            s_json_data(m->data, m->size);
        } else {
            json_key("lost");
            json_number(m->id);
        }
    } else {
        json_key("name");
        json_cstring(m->name[0] ? m->name : NULL);
        if (m->kind == IPCNET_MSG_REQUEST || m->kind == IPCNET_MSG_REPLY) {
            json_key("id");
            json_number(m->id);
        }
        if (m->kind == IPCNET_MSG_REQUEST) {
            json_key("timeout_ms");
            json_number(m->timeout_ms);
        }
        s_json_sender(m);
        s_json_data(m->data, m->size);
    }
    json_close();
    json_end();
}

/* Bytes as text for a terminal: printable ASCII as it is, the rest as
   \xHH, at most max of them. */
static void s_print_bytes(const void *data, size_t size, size_t max)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < size && i < max; i++)
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    if (size > max)
        fputs("...", stdout);
}

void cli_print_msg(const cli_t *cli, const ipcnet_msg_t *m)
{
    if (cli->json) {
        s_json_msg(m);
        return;
    }
    if (m->kind == IPCNET_MSG_EVENT) {
        const char *what, *how;
        s_event_words(m, &what, &how);
        if (m->event == IPCNET_EV_NAME_UP || m->event == IPCNET_EV_NAME_DOWN)
            printf("%s %s %s\n", how, m->name, m->node);
        else
            printf("%s %s %s\n", what, how, m->node);
    } else if (m->kind == IPCNET_MSG_MONITOR) {
        char when[16];
        long ns = log_now(when, sizeof when, 0);
        if (m->event == 0)
            printf("%s.%06ld  (%u notes lost: the monitor read too slowly)\n", when,
                   ns / 1000, m->id);
        else {
            printf("%s.%06ld  %-7s %s -> %s  uid %u (%s)  %zu bytes  ", when, ns / 1000,
                   s_kinds[m->event], m->source, m->name, (unsigned) m->uid, m->user, m->total);
            s_print_bytes(m->data, m->size, 32);
            putchar('\n');
        }
    } else {
        if (cli->verbose)
            printf("%s from %s uid %u (%s) node %s (%s): ", s_kinds[m->kind], m->source,
                   (unsigned) m->uid, m->user, m->node, m->node_id);
        else if (m->kind == IPCNET_MSG_REQUEST)
            printf("request from %s: ", m->source);
        if (m->kind == IPCNET_MSG_PUBLISH)
            printf("%s ", m->name);
        fwrite(m->data, 1, m->size, stdout);
        putchar('\n');
    }
    fflush(stdout);
}

/* --- sending ------------------------------------------------------------------------ */

/* The payload to send: the argument, or all of standard input for "-". */
char *cli_payload(const char *data, size_t max, size_t *ret_size)
{
    if (strcmp(data, "-") != 0) {
        *ret_size = strlen(data);
        return strdup(data);
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (len == cap) {
            if (cap > max)
                break;          /* the node will say it is too large */
            char *more = realloc(buf, cap * 2);
            if (!more) {
                free(buf);
                return NULL;
            }
            buf = more;
            cap *= 2;
        }
        ssize_t n = read(0, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    *ret_size = len;
    return buf;
}

static int s_post(ipcnet_t *c, const cli_t *cli)
{
    size_t size;
    char *data = cli_payload(cli->data, ipcnet_max_message(c), &size);
    if (!data) {
        fprintf(stderr, "ipc-node: cannot read the payload: %s\n", strerror(errno));
        return 1;
    }
    ipcnet_msg_t reply;
    const char *what = cli->verb == VERB_PUBLISH ? "publish to" : "send to";
    int rc;
    if (cli->verb == VERB_SEND)
        rc = ipcnet_send(c, cli->target, data, size, IPCNET_CONFIRM);
    else if (cli->verb == VERB_PUBLISH)
        rc = ipcnet_publish(c, cli->target, data, size, IPCNET_CONFIRM);
    else {
        rc = ipcnet_request(c, cli->target, data, size, cli->timeout_ms, &reply);
        what = "request";
    }
    free(data);
    if (rc < 0) {
        cli_failed(c, what, cli->target, rc);
        return 1;
    }
    if (cli->verb == VERB_REQUEST)
        cli_print_msg(cli, &reply);
    return 0;
}

/* --- receiving ------------------------------------------------------------------------ */

/* --listen, --subscribe, --watch, --monitor: print messages until count. */
static int s_receive(ipcnet_t *c, const cli_t *cli)
{
    int rc;
    const char *what, *target = cli->target ? cli->target : "*";
    if (cli->verb == VERB_LISTEN) {
        rc = ipcnet_bind(c, target);
        what = "bind";
    } else if (cli->verb == VERB_SUBSCRIBE) {
        rc = ipcnet_subscribe(c, target);
        what = "subscribe to";
    } else if (cli->verb == VERB_WATCH) {
        rc = ipcnet_watch(c, target);
        what = "watch";
    } else {
        rc = ipcnet_monitor(c, cli->target);
        what = "monitor";
    }
    if (rc < 0) {
        cli_failed(c, what, target, rc);
        return 1;
    }
    /* Ready: a script may go on once this line is out. */
    fprintf(stderr, "ipc-node: %s %s on node %s (as %s)\n",
            cli->verb == VERB_LISTEN ? "listening to" : cli->verb == VERB_SUBSCRIBE
            ? "subscribed to" : cli->verb == VERB_WATCH ? "watching" : "monitoring",
            target, ipcnet_node(c), ipcnet_address(c));
    for (long n = 0; cli->count == 0 || n < cli->count;) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(c, &m, -1);
        if (rc < 0) {
            fprintf(stderr, "ipc-node: %s\n", ipcnet_strerror(rc));
            return 1;
        }
        /* The node went away and came back: said on stderr, not counted. */
        if (m.kind == IPCNET_MSG_EVENT && m.event == IPCNET_EV_NODE_DOWN) {
            fprintf(stderr, "ipc-node: lost the node %s; reconnecting\n", m.node);
            continue;
        }
        if (m.kind == IPCNET_MSG_EVENT && m.event == IPCNET_EV_NODE_UP) {
            fprintf(stderr, "ipc-node: node %s back after %u ms\n", m.node, (unsigned) m.gap_ms);
            continue;
        }
        if (m.kind == IPCNET_MSG_ERROR) {
            fprintf(stderr, "ipc-node: '%s': %s%s%.*s%s\n", m.name, ipcnet_strerror(m.error),
                    m.size ? " (" : "", (int) m.size, (const char *) m.data, m.size ? ")" : "");
            continue;
        }
        cli_print_msg(cli, &m);
        n++;
        if (m.kind == IPCNET_MSG_REQUEST && (cli->echo || cli->exec)) {
            rc = cli->exec ? cli_exec_reply(c, cli, &m) : ipcnet_reply(c, &m, m.data, m.size);
            if (rc < 0)
                fprintf(stderr, "ipc-node: cannot reply to %s: %s\n", m.source, ipcnet_strerror(rc));
        }
    }
    return 0;
}

/* --diagnose PEER: the node's words, as they are. */
static int s_diagnose(ipcnet_t *c, const cli_t *cli)
{
    char *text;
    int rc = ipcnet_diagnose(c, cli->target, &text);
    if (rc < 0) {
        cli_failed(c, "diagnose", cli->target, rc);
        return 1;
    }
    if (cli->json) {
        /* One string a line of the answer. */
        json_open('{');
        json_key("peer");
        json_cstring(cli->target);
        json_key("lines");
        json_open('[');
        for (char *line = text, *next; *line; line = next) {
            next = strchr(line, '\n');
            size_t len = next ? (size_t) (next - line) : strlen(line);
            json_string(line, len);
            next = next ? next + 1 : line + len;
        }
        json_close();
        json_close();
        json_end();
    } else
        fputs(text, stdout);
    free(text);
    return 0;
}

/* --- the run ------------------------------------------------------------------------ */

/* Why we may not connect to path, when connect said EACCES. */
static void s_why_refused(const char *path)
{
    char dir[108], why[512];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir)
        *slash = 0;
    if (paths_check_dir(dir, geteuid(), (uid_t) -1, why, sizeof why) < 0 &&
        strncmp(path, PATHS_SYSTEM_SOCKET, sizeof PATHS_SYSTEM_SOCKET) != 0) {
        fprintf(stderr, "ipc-node: %s\n", why);
        return;
    }
    /* The socket, or the directory that keeps us from seeing it. */
    struct stat st;
    const char *what = path;
    if (stat(path, &st) < 0) {
        what = dir;
        if (stat(dir, &st) < 0)
            return;
    }
    struct group *g = getgrgid(st.st_gid);
    if (st.st_mode & (S_IWGRP | S_IXGRP))
        fprintf(stderr, "ipc-node: %s is for its owner and group %s (mode %04o): ask to be "
                "made a member of %s\n", what, g ? g->gr_name : "?",
                (unsigned) (st.st_mode & 07777), g ? g->gr_name : "it");
    else
        fprintf(stderr, "ipc-node: %s is its owner's alone (mode %04o)\n", what,
                (unsigned) (st.st_mode & 07777));
}

ipcnet_t *cli_connect(const cli_t *cli, const char *label, int flags)
{
    ipcnet_t *c;
    char path[108];
    const char *where = cli->socket;
    /* The default: the one it would use, or, when the user's own
       directory is not safe, that directory's socket, to say why. */
    if (!where && (ipcnet_default_socket(path, sizeof path) == 0 ||
                   paths_own_socket(path, sizeof path) == 0))
        where = path;
    int rc = ipcnet_connect(&c, cli->socket, label, flags);
    if (rc < 0) {
        /* Here ENOENT is a missing socket file, not a missing name. */
        fprintf(stderr, "ipc-node: cannot connect to %s: %s%s\n", where ? where : "the node",
                rc == -ENOENT || rc == -ECONNREFUSED || rc == -EACCES ? strerror(-rc)
                                                                       : ipcnet_strerror(rc),
                rc == -ENOENT || rc == -ECONNREFUSED ? " (is ipc-node running?)" : "");
        if (rc == -EACCES)
            s_why_refused(where ? where : PATHS_SYSTEM_SOCKET);
        return NULL;
    }
    return c;
}

int cli_run(const cli_t *cli)
{
    json_pretty(cli->json == 2);
    if (cli->verb == VERB_CHECK)
        return cli_check(cli);      /* its own exit codes, its own connection */
    /* Receivers outlive a restart of their node; one-shot verbs fail. */
    int receiver = cli->verb == VERB_LISTEN || cli->verb == VERB_SUBSCRIBE ||
                   cli->verb == VERB_WATCH || cli->verb == VERB_MONITOR;
    ipcnet_t *c = cli_connect(cli, "ipc-node-cli", receiver ? IPCNET_RECONNECT : 0);
    if (!c)
        return 1;
    int status = 0;
    switch (cli->verb) {
    case VERB_SERVICES:
    case VERB_PEERS:
    case VERB_STATS:
    case VERB_CLIENTS:
        status = s_listing(c, cli);
        break;
    case VERB_SEND:
    case VERB_PUBLISH:
    case VERB_REQUEST:
        status = s_post(c, cli);
        break;
    case VERB_LISTEN:
    case VERB_SUBSCRIBE:
    case VERB_WATCH:
    case VERB_MONITOR:
        status = s_receive(c, cli);
        break;
    case VERB_DIAGNOSE:
        status = s_diagnose(c, cli);
        break;
    case VERB_PING:
        status = cli_ping(c, cli);
        break;
    case VERB_BENCH:
        status = cli_bench(c, cli);
        break;
    case VERB_PUT:
    case VERB_GET:
    case VERB_DEL:
    case VERB_KEYS:
    case VERB_WATCH_KEYS:
        status = cli_store(c, cli);
        break;
    case VERB_CHECK:
    case VERB_NONE:
        break;
    }
    ipcnet_close(&c);
    return status;
}
