/*  cli_store.c: the store's verbs, --put, --get, --del, --keys and
    --watch-keys, as a client of the node through libipcnet; --json makes
    one JSON value of each answer and each event. */

#include "cli.h"
#include "ipcnet.h"
#include "json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void s_failed(ipcnet_t *c, const char *what, const char *key, int rc)
{
    const char *why = ipcnet_last_error(c);
    if (rc == -ENOENT && strcmp(why, "no such key") == 0)
        why = "";
    fprintf(stderr, "ipc-node: cannot %s '%s': %s%s%s%s\n", what, key,
            rc == -ENOENT ? "no such key" : ipcnet_strerror(rc), *why ? " (" : "", why,
            *why ? ")" : "");
}

static void s_json_value(const char *key, uint64_t version, const char *node_id,
                         const void *data, size_t size, int deleted)
{
    char v[24];
    snprintf(v, sizeof v, "%" PRIu64, version);
    json_open('{');
    if (deleted >= 0) {
        json_key("event");
        json_cstring(deleted ? "del" : "put");
    }
    json_key("key");
    json_cstring(key);
    json_key("version");
    json_raw(v);
    if (node_id) {
        json_key("node_id");
        json_cstring(*node_id ? node_id : NULL);
    }
    if (deleted <= 0) {
        json_key("data");
        if (json_payload(data, size)) {
            json_key("encoding");
            json_cstring("base64");
        }
    }
    json_close();
    json_end();
}

static int s_put(ipcnet_t *c, const cli_t *cli)
{
    size_t size;
    char *value = cli_payload(cli->data, ipcnet_max_message(c), &size);
    if (!value) {
        fprintf(stderr, "ipc-node: cannot read the value: %s\n", strerror(errno));
        return 1;
    }
    uint64_t version = 0;
    int rc = ipcnet_put_full(c, cli->target, value, size, cli->ttl_ms,
                             cli->ephemeral ? IPCNET_EPHEMERAL : 0, 0, &version);
    free(value);
    if (rc < 0) {
        s_failed(c, "put", cli->target, rc);
        return 1;
    }
    if (cli->json) {
        char v[24];
        snprintf(v, sizeof v, "%" PRIu64, version);
        json_open('{');
        json_key("key");
        json_cstring(cli->target);
        json_key("version");
        json_raw(v);
        json_close();
        json_end();
    } else
        printf("%" PRIu64 "\n", version);
    fflush(stdout);
    if (!cli->ephemeral)
        return 0;
    /* An ephemeral key lives as long as this client: until it is killed
       or its node goes. */
    fprintf(stderr, "ipc-node: holding '%s' until this process ends\n", cli->target);
    for (;;) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(c, &m, -1);
        if (rc < 0 && rc != -EAGAIN && rc != -ETIMEDOUT) {
            fprintf(stderr, "ipc-node: %s\n", ipcnet_strerror(rc));
            return 1;
        }
    }
}

static int s_get(ipcnet_t *c, const cli_t *cli)
{
    ipcnet_msg_t m;
    int rc = ipcnet_get(c, cli->target, &m, cli->timeout_ms);
    if (rc < 0) {
        s_failed(c, "get", cli->target, rc);
        return 1;
    }
    if (cli->json)
        s_json_value(cli->target, m.version, NULL, m.data, m.size, -1);
    else {
        fwrite(m.data, 1, m.size, stdout);
        if (isatty(1))
            putchar('\n');
    }
    return 0;
}

static int s_keys(ipcnet_t *c, const cli_t *cli)
{
    char *text;
    int rc = ipcnet_keys(c, cli->target, &text);
    if (rc < 0) {
        s_failed(c, "list keys", cli->target, rc);
        return 1;
    }
    if (cli->json)
        json_open('[');
    else
        printf("%-40s %-20s %s\n", "KEY", "VERSION", "SIZE");
    for (char *line = text, *next; *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        else
            next = line + strlen(line);
        char *version = strchr(line, '\t');
        char *size = version ? strchr(version + 1, '\t') : NULL;
        if (!size)
            continue;
        *version++ = 0;
        *size++ = 0;
        if (cli->json) {
            json_open('{');
            json_key("key");
            json_cstring(line);
            json_key("version");
            json_raw(version);
            json_key("size");
            json_raw(size);
            json_close();
        } else
            printf("%-40s %-20s %s\n", line, version, size);
    }
    if (cli->json) {
        json_close();
        json_end();
    }
    free(text);
    return 0;
}

static int s_watch(ipcnet_t *c, const cli_t *cli)
{
    int rc = ipcnet_watch_keys(c, cli->target);
    if (rc < 0) {
        s_failed(c, "watch keys", cli->target, rc);
        return 1;
    }
    fprintf(stderr, "ipc-node: watching keys %s on node %s\n", cli->target, ipcnet_node(c));
    for (long n = 0; cli->count == 0 || n < cli->count;) {
        ipcnet_msg_t m;
        rc = ipcnet_recv(c, &m, -1);
        if (rc < 0) {
            fprintf(stderr, "ipc-node: %s\n", ipcnet_strerror(rc));
            return 1;
        }
        if (m.kind != IPCNET_MSG_KEY)
            continue;
        int deleted = m.event == IPCNET_KEY_DEL;
        if (cli->json)
            s_json_value(m.name, m.version, m.node_id, m.data, m.size, deleted);
        else if (deleted)
            printf("del %s %" PRIu64 "\n", m.name, m.version);
        else {
            printf("put %s %" PRIu64 " ", m.name, m.version);
            fwrite(m.data, 1, m.size, stdout);
            putchar('\n');
        }
        fflush(stdout);
        n++;
    }
    return 0;
}

int cli_store(ipcnet_t *c, const cli_t *cli)
{
    switch (cli->verb) {
    case VERB_PUT:
        return s_put(c, cli);
    case VERB_GET:
        return s_get(c, cli);
    case VERB_DEL: {
        int rc = ipcnet_del(c, cli->target);
        if (rc < 0) {
            s_failed(c, "delete", cli->target, rc);
            return 1;
        }
        return 0;
    }
    case VERB_KEYS:
        return s_keys(c, cli);
    case VERB_WATCH_KEYS:
        return s_watch(c, cli);
    default:
        return 1;
    }
}
