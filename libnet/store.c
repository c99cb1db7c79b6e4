/*  store.c: the client's calls of the shared key-value store (put, get,
    del, keys, watch), as frames of the local protocol (docs/store.md). */

#include "handle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t s_get64(const uint8_t *p)
{
    return (uint64_t) wire_get32(p) << 32 | wire_get32(p + 4);
}

static void s_put64(uint8_t *p, uint64_t v)
{
    wire_put32(p, (uint32_t) (v >> 32));
    wire_put32(p + 4, (uint32_t) v);
}

static int s_key_ok(const char *key)
{
    return key && wire_check_name(key, strlen(key)) == 0;
}

static int s_pattern_ok(const char *pattern)
{
    return pattern && *pattern && wire_check_pattern(pattern, strlen(pattern)) == 0;
}

int ipcnet_put_full(ipcnet_t *c, const char *key, const void *value, size_t size,
                    uint32_t ttl_ms, int flags, uint64_t expected_version,
                    uint64_t *ret_version)
{
    if (!c || !s_key_ok(key) || (size && !value) || (flags & ~(IPCNET_EPHEMERAL | IPCNET_IF)))
        return -EINVAL;
    if (size > c->max_message)
        return -EMSGSIZE;
    /* The version first, then the value: one frame, so one copy into it. */
    uint8_t *payload = malloc(8 + size);
    if (!payload)
        return -ENOMEM;
    s_put64(payload, expected_version);
    if (size)
        memcpy(payload + 8, value, size);
    uint16_t wflags = (flags & IPCNET_EPHEMERAL ? WIRE_F_EPHEMERAL : 0) |
                      (flags & IPCNET_IF ? WIRE_F_IF : 0);
    wire_frame_t f;
    int rc = handle_call(c, WIRE_PUT, wflags, ttl_ms, key, payload, 8 + size, 0, &f, NULL);
    free(payload);
    if (rc == 0 && ret_version)
        *ret_version = f.size >= 8 ? s_get64(f.data) : 0;
    if (rc == 0)
        handle_release(c);
    return rc;
}

int ipcnet_put(ipcnet_t *c, const char *key, const void *value, size_t size,
               uint32_t ttl_ms, int flags)
{
    return ipcnet_put_full(c, key, value, size, ttl_ms, flags & ~IPCNET_IF, 0, NULL);
}

int ipcnet_put_if(ipcnet_t *c, const char *key, const void *value, size_t size,
                  uint64_t expected_version)
{
    return ipcnet_put_full(c, key, value, size, 0, IPCNET_IF, expected_version, NULL);
}

int ipcnet_get(ipcnet_t *c, const char *key, ipcnet_msg_t *ret, int timeout_ms)
{
    if (!c || !ret || !s_key_ok(key) || timeout_ms < 0)
        return -EINVAL;
    wire_frame_t f;
    int rc = handle_call(c, WIRE_GET, 0, 0, key, NULL, 0, timeout_ms, &f, NULL);
    if (rc < 0)
        return rc;
    if (f.size < 8) {
        handle_release(c);
        return -EPROTO;
    }
    memset(ret, 0, sizeof *ret);
    ret->kind = IPCNET_MSG_KEY;
    ret->event = IPCNET_KEY_PUT;
    ret->source = ret->node = ret->user = ret->node_id = "";
    ret->name = strcpy(c->s1, key);
    ret->version = s_get64(f.data);
    ret->data = f.data + 8;
    ret->size = f.size - 8;
    return 0;       /* the view stays until the next call */
}

int ipcnet_del(ipcnet_t *c, const char *key)
{
    if (!c || !s_key_ok(key))
        return -EINVAL;
    wire_frame_t f;
    int rc = handle_call(c, WIRE_DEL, 0, 0, key, NULL, 0, 0, &f, NULL);
    if (rc == 0)
        handle_release(c);
    return rc;
}

int ipcnet_keys(ipcnet_t *c, const char *pattern, char **ret_text)
{
    if (!c || !ret_text || !s_pattern_ok(pattern))
        return -EINVAL;
    uint32_t seq;
    wire_frame_t f;
    int rc = handle_call(c, WIRE_KEYS, 0, 0, pattern, NULL, 0, 0, &f, &seq);
    /* A long listing comes in parts, each OK but the last flagged MORE. */
    char *text = NULL;
    size_t len = 0;
    while (rc == 0) {
        char *t = realloc(text, len + f.size + 1);
        if (!t) {
            rc = -ENOMEM;
            break;
        }
        text = t;
        memcpy(text + len, f.data, f.size);
        len += f.size;
        int more = (f.flags & WIRE_F_MORE) != 0;
        handle_release(c);
        if (!more)
            break;
        rc = handle_await(c, seq, 0, &f);
    }
    if (rc < 0) {
        free(text);
        return rc;
    }
    text[len] = 0;
    *ret_text = text;
    return 0;
}

static int s_watch(ipcnet_t *c, uint8_t type, const char *pattern)
{
    if (!c || !s_pattern_ok(pattern))
        return -EINVAL;
    wire_frame_t f;
    int rc = handle_call(c, type, 0, 0, pattern, NULL, 0, 0, &f, NULL);
    if (rc == 0)
        handle_release(c);
    /* IPCNET_RECONNECT: watched again on return, with a new snapshot. */
    if (rc == 0 && (c->flags & IPCNET_RECONNECT)) {
        if (type == WIRE_UNWATCH_KEYS)
            reconnect_held_del(c, WIRE_WATCH_KEYS, pattern);
        else if (reconnect_held_add(c, WIRE_WATCH_KEYS, pattern) < 0) {
            if (handle_call(c, WIRE_UNWATCH_KEYS, 0, 0, pattern, NULL, 0, 0, &f, NULL) == 0)
                handle_release(c);
            rc = -ENOMEM;
        }
    }
    return rc;
}

int ipcnet_watch_keys(ipcnet_t *c, const char *pattern)
{
    return s_watch(c, WIRE_WATCH_KEYS, pattern);
}

int ipcnet_unwatch_keys(ipcnet_t *c, const char *pattern)
{
    return s_watch(c, WIRE_UNWATCH_KEYS, pattern);
}

int store_to_msg(ipcnet_t *c, const wire_frame_t *f, ipcnet_msg_t *msg)
{
    if (f->size < 8 || (f->aux != WIRE_KEV_PUT && f->aux != WIRE_KEV_DEL))
        return 0;
    msg->kind = IPCNET_MSG_KEY;
    msg->event = (int) f->aux;
    memcpy(c->s1, f->s1, f->s1len);
    c->s1[f->s1len] = 0;
    msg->name = c->s1;
    memcpy(c->node_id, f->s2, f->s2len < 2 * WIRE_NODE_ID ? f->s2len : 2 * WIRE_NODE_ID);
    c->node_id[f->s2len < 2 * WIRE_NODE_ID ? f->s2len : 2 * WIRE_NODE_ID] = 0;
    msg->node_id = c->node_id;
    msg->version = s_get64(f->data);
    msg->data = f->data + 8;
    msg->size = f->size - 8;
    msg->id = 0;
    return 1;
}
