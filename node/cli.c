/*  cli.c: ipc-node --services, --send, --listen ... through libipcnet.

    Plain output is for people: aligned columns, one line a message. With
    --json every listing is one JSON array and every message one JSON
    object a line, for scripts. Failures print one line on stderr and exit
    with status 1. */

#include "cli.h"
#include "ipcnet.h"
#include "paths.h"

#include <grp.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_json_str(const char *s, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch == '\n')
            fputs("\\n", stdout);
        else if (ch == '\t')
            fputs("\\t", stdout);
        else if (ch < 0x20 || ch == 0x7f)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

/* A call the node answered with an error: its errno's words, and for a
   refusal or a limit the node's own for why (the rule that denied it). */
static void s_failed(ipcnet_t *c, const char *what, const char *target, int rc)
{
    /* The node's words, when it gave any ("no such node", the rule that
       denied it, ...). */
    const char *why = ipcnet_last_error(c);
    fprintf(stderr, "ipc-node: cannot %s '%s': %s%s%s%s\n", what, target,
            rc == -ENOENT ? "no such name: nobody holds it" : ipcnet_strerror(rc),
            *why ? " (" : "", why, *why ? ")" : "");
}

static int s_is_number(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* A field as JSON: digits as a number, anything else as a string. */
static void s_json_value(const char *s)
{
    if (s_is_number(s))
        fputs(s, stdout);
    else
        s_json_str(s, strlen(s));
}

/* Splits text into lines of up to 8 tab-separated fields (in place; ""
   past a line's last field). Returns the rows, in *ret_fields (freed by
   the caller; NULL and 0 when out of memory). */
static size_t s_split(char *text, char *(**ret_fields)[8])
{
    size_t rows = 0, maxrows = 1;
    for (const char *p = text; *p; p++)
        maxrows += *p == '\n';
    char *(*fields)[8] = *ret_fields = calloc(maxrows, sizeof *fields);
    if (!fields)
        return 0;
    for (char *line = text, *next; line && *line && rows < maxrows; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        size_t col = 0;
        for (char *f = line, *tab; f && col < 8; f = tab) {
            tab = strchr(f, '\t');
            if (tab)
                *tab++ = 0;
            fields[rows][col++] = f;
        }
        for (size_t i = col; i < 8; i++)
            fields[rows][i] = "";
        rows++;
    }
    return rows;
}

/* Prints a listing as a table or as a JSON array of objects. */
static void s_print_table(char *text, const char *const *cols, size_t ncols, int json)
{
    char *(*fields)[8];
    size_t rows = s_split(text, &fields);
    if (!fields)
        return;
    if (json) {
        putchar('[');
        for (size_t r = 0; r < rows; r++) {
            printf(r ? ",\n {" : "{");
            for (size_t c = 0; c < ncols; c++) {
                printf(c ? ", \"%s\": " : "\"%s\": ", cols[c]);
                s_json_value(fields[r][c]);
            }
            putchar('}');
        }
        puts("]");
    } else {
        size_t width[8] = { 0 };
        for (size_t c = 0; c < ncols; c++) {
            width[c] = strlen(cols[c]);
            for (size_t r = 0; r < rows; r++)
                if (strlen(fields[r][c]) > width[c])
                    width[c] = strlen(fields[r][c]);
        }
        for (size_t c = 0; c < ncols; c++) {
            for (const char *h = cols[c]; *h; h++)
                putchar(*h >= 'a' && *h <= 'z' ? *h - 32 : *h);
            printf("%*s", c + 1 < ncols ? (int) (width[c] - strlen(cols[c]) + 2) : 0, "");
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
    char *(*fields)[8];
    size_t rows = s_split(text, &fields);
    if (!fields)
        return;
    if (json)
        putchar('{');
    for (size_t r = 0; r < rows; r++) {
        if (json) {
            printf(r ? ", " : "");
            s_json_str(fields[r][0], strlen(fields[r][0]));
            printf(": ");
            s_json_value(fields[r][1]);
        } else
            printf("%-18s %s\n", fields[r][0], fields[r][1]);
    }
    if (json)
        puts("}");
    free(fields);
}

static const char *const s_cols_services[] = { "name", "node", "holder", "label", "user" };
static const char *const s_cols_peers[] = { "name", "id", "address", "source", "state",
                                            "rtt_us", "last_seen_ms", "key" };
static const char *const s_cols_clients[] = { "address", "label", "pid", "uid", "queued", "user" };

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
        s_print_table(text, s_cols_peers, 8, cli->json);
    else if (what == IPCNET_Q_CLIENTS)
        s_print_table(text, s_cols_clients, 6, cli->json);
    else
        s_print_stats(text, cli->json);
    free(text);
    return 0;
}

/* The payload to send: the argument, or all of standard input for "-". */
static char *s_payload(const char *data, size_t max, size_t *ret_size)
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

/* Prints one received message. */
static void s_print_msg(const cli_t *cli, const ipcnet_msg_t *m)
{
    static const char *const kinds[] = { "", "send", "request", "reply", "publish", "event", "error" };
    if (cli->json) {
        printf("{\"kind\": \"%s\", \"from\": ", kinds[m->kind]);
        s_json_str(m->source, strlen(m->source));
        printf(", \"name\": ");
        s_json_str(m->name, strlen(m->name));
        if (m->kind == IPCNET_MSG_EVENT) {
            printf(", \"event\": \"%s\", \"node\": ",
                   m->event == IPCNET_EV_NAME_UP || m->event == IPCNET_EV_PEER_UP ? "up" : "down");
            s_json_str(m->node, strlen(m->node));
        } else {
            /* Who sent it, as its node says: uid, user, node and its id. */
            printf(", \"uid\": %u, \"user\": ", (unsigned) m->uid);
            s_json_str(m->user, strlen(m->user));
            printf(", \"node\": ");
            s_json_str(m->node, strlen(m->node));
            printf(", \"node_id\": ");
            s_json_str(m->node_id, strlen(m->node_id));
            printf(", \"data\": ");
            s_json_str(m->data, m->size);
        }
        puts("}");
    } else if (m->kind == IPCNET_MSG_EVENT)
        printf("%s %s %s\n", m->event == IPCNET_EV_NAME_UP || m->event == IPCNET_EV_PEER_UP
               ? "up" : "down", m->name, m->node);
    else {
        if (cli->verbose)
            printf("%s from %s uid %u (%s) node %s (%s): ", kinds[m->kind], m->source,
                   (unsigned) m->uid, m->user, m->node, m->node_id);
        if (m->kind == IPCNET_MSG_PUBLISH)
            printf("%s ", m->name);
        fwrite(m->data, 1, m->size, stdout);
        putchar('\n');
    }
    fflush(stdout);
}

/* --listen, --subscribe, --watch: print messages until count is reached. */
static int s_receive(ipcnet_t *c, const cli_t *cli)
{
    int rc;
    const char *what;
    if (cli->verb == VERB_LISTEN) {
        rc = ipcnet_bind(c, cli->target);
        what = "bind";
    } else if (cli->verb == VERB_SUBSCRIBE) {
        rc = ipcnet_subscribe(c, cli->target);
        what = "subscribe to";
    } else {
        rc = ipcnet_watch(c, cli->target);
        what = "watch";
    }
    if (rc < 0) {
        s_failed(c, what, cli->target, rc);
        return 1;
    }
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
        s_print_msg(cli, &m);
        n++;
        if (m.kind == IPCNET_MSG_REQUEST && cli->echo) {
            rc = ipcnet_reply(c, &m, m.data, m.size);
            if (rc < 0)
                fprintf(stderr, "ipc-node: cannot reply to %s: %s\n", m.source, ipcnet_strerror(rc));
        }
    }
    return 0;
}

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

int cli_run(const cli_t *cli)
{
    ipcnet_t *c;
    char path[108];
    const char *where = cli->socket;
    if (!where && ipcnet_default_socket(path, sizeof path) == 0)
        where = path;
    /* Receivers outlive a restart of their node; one-shot verbs fail. */
    int receiver = cli->verb == VERB_LISTEN || cli->verb == VERB_SUBSCRIBE ||
                   cli->verb == VERB_WATCH;
    int rc = ipcnet_connect(&c, cli->socket, "ipc-node-cli", receiver ? IPCNET_RECONNECT : 0);
    if (rc < 0) {
        /* Here ENOENT is a missing socket file, not a missing name. */
        fprintf(stderr, "ipc-node: cannot connect to %s: %s%s\n", where ? where : "the node",
                rc == -ENOENT || rc == -ECONNREFUSED || rc == -EACCES ? strerror(-rc)
                                                                       : ipcnet_strerror(rc),
                rc == -ENOENT || rc == -ECONNREFUSED ? " (is ipc-node running?)" : "");
        if (rc == -EACCES)
            s_why_refused(where ? where : PATHS_SYSTEM_SOCKET);
        return 1;
    }
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
    case VERB_REQUEST: {
        size_t size;
        char *data = s_payload(cli->data, ipcnet_max_message(c), &size);
        if (!data) {
            fprintf(stderr, "ipc-node: cannot read the payload: %s\n", strerror(errno));
            status = 1;
            break;
        }
        ipcnet_msg_t reply;
        const char *what = cli->verb == VERB_PUBLISH ? "publish to" : "send to";
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
            s_failed(c, what, cli->target, rc);
            status = 1;
        } else if (cli->verb == VERB_REQUEST)
            s_print_msg(cli, &reply);
        break;
    }
    case VERB_LISTEN:
    case VERB_SUBSCRIBE:
    case VERB_WATCH:
        status = s_receive(c, cli);
        break;
    case VERB_NONE:
        break;
    }
    ipcnet_close(&c);
    return status;
}
