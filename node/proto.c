/*  proto.c: the node-to-node codec. A read cursor checks every field
    against the end of the frame; a frame with bytes left over is bad. */

#include "proto.h"
#include "wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint8_t *p;
    size_t left;
    int bad;
} cur_t;

static uint64_t s_uint(cur_t *c, size_t n)
{
    if (c->bad || c->left < n) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | c->p[i];
    c->p += n;
    c->left -= n;
    return v;
}

static const char *s_str(cur_t *c, size_t *len)
{
    size_t n = (size_t) s_uint(c, 1);
    if (c->bad || c->left < n) {
        c->bad = 1;
        *len = 0;
        return "";
    }
    const char *s = (const char *) c->p;
    c->p += n;
    c->left -= n;
    *len = n;
    return s;
}

int proto_check_id(const char *s, size_t len)
{
    if (len != PROTO_ID_LEN)
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return -EINVAL;
    return 0;
}

void proto_hex(const uint8_t *bytes, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    out[2 * n] = 0;
}

static int s_nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int proto_unhex(const char *hex, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = s_nibble(hex[2 * i]), lo = hi < 0 ? -1 : s_nibble(hex[2 * i + 1]);
        if (lo < 0)
            return -EINVAL;
        out[i] = (uint8_t) (hi << 4 | lo);
    }
    return 0;
}

void proto_key_id(const uint8_t *key, char id[PROTO_ID_LEN + 1])
{
    proto_hex(key, PROTO_ID_LEN / 2, id);
}

/* A client's unique address ":N@node", as every message names its sender. */
static int s_check_address(const char *s, size_t len)
{
    uint64_t id;
    size_t namelen, nodelen;
    const char *node;
    return wire_parse_dest(s, len, &id, &namelen, &node, &nodelen) == 0 && id && nodelen
        ? 0 : -EINVAL;
}

static int s_check_dest(const char *s, size_t len)
{
    uint64_t id;
    size_t namelen, nodelen;
    const char *node;
    return wire_parse_dest(s, len, &id, &namelen, &node, &nodelen);
}

/* An endpoint as gossiped: "tcp://" then host and port, printable. */
static int s_check_endpoint(const char *s, size_t len)
{
    if (len < 7 || memcmp(s, "tcp://", 6) != 0)
        return -EINVAL;
    for (size_t i = 6; i < len; i++)
        if (s[i] <= ' ' || s[i] >= 0x7f)
            return -EINVAL;
    return 0;
}

/* Walks a list, checking each item; returns 0 or -EBADMSG. */
static int s_list(cur_t *c, proto_msg_t *m, int peers, int patterns)
{
    m->count = (uint16_t) s_uint(c, 2);
    m->list = c->p;
    if (c->bad || m->count == 0 || m->count > PROTO_LIST_MAX)
        return -EBADMSG;
    for (unsigned i = 0; i < m->count; i++) {
        size_t len;
        const char *s = s_str(c, &len);
        if (peers) {
            const char *id = s;
            if (c->bad || proto_check_id(s, len) < 0)
                return -EBADMSG;
            s = s_str(c, &len);
            if (c->bad || wire_check_name(s, len) < 0)
                return -EBADMSG;
            s = s_str(c, &len);
            if (c->bad || s_check_endpoint(s, len) < 0)
                return -EBADMSG;
            /* The key, whose id the item's id must be. */
            char kid[PROTO_ID_LEN + 1];
            s = s_str(c, &len);
            if (c->bad || len != PROTO_KEY_LEN)
                return -EBADMSG;
            proto_key_id((const uint8_t *) s, kid);
            if (memcmp(kid, id, PROTO_ID_LEN) != 0)
                return -EBADMSG;
        } else if (c->bad || (patterns ? wire_check_pattern(s, len) : wire_check_name(s, len)) < 0)
            return -EBADMSG;
    }
    m->listlen = (size_t) (c->p - m->list);
    return 0;
}

int proto_decode(const uint8_t *buf, size_t len, proto_msg_t *ret)
{
    if (len < PROTO_HEAD || buf[0] != PROTO_SIG)
        return -EBADMSG;
    proto_msg_t m;
    memset(&m, 0, sizeof m);
    m.version = buf[1];
    m.type = buf[2];
    m.flags = buf[3];
    m.seq = wire_get32(buf + 4);
    if (m.version != PROTO_VERSION) {
        *ret = m;
        return -EPROTO;
    }
    cur_t c = { buf + PROTO_HEAD, len - PROTO_HEAD, 0 };
    int rc = 0;
    switch (m.type) {
    case P_HELLO:
    case P_HELLO_ACK:
        m.id = s_str(&c, &m.idlen);
        m.name = s_str(&c, &m.namelen);
        if (m.type == P_HELLO) {
            m.cluster = s_str(&c, &m.clusterlen);
            m.port = (uint16_t) s_uint(&c, 2);
        }
        m.incarnation = s_uint(&c, 8);
        if (m.type == P_HELLO)
            m.heartbeat = (uint32_t) s_uint(&c, 4);
        if (!c.bad && (proto_check_id(m.id, m.idlen) < 0 || wire_check_name(m.name, m.namelen) < 0 ||
                       (m.type == P_HELLO && (wire_check_name(m.cluster, m.clusterlen) < 0 ||
                                              m.port == 0 || m.heartbeat == 0))))
            rc = -EBADMSG;
        break;
    case P_NAMES_ADD:
    case P_NAMES_DEL:
        rc = s_list(&c, &m, 0, 0);
        break;
    case P_SUBS_ADD:
    case P_SUBS_DEL:
        rc = s_list(&c, &m, 0, 1);
        break;
    case P_PEERS:
        rc = s_list(&c, &m, 1, 0);
        break;
    case P_MSG:
        m.kind = (uint8_t) s_uint(&c, 1);
        m.cseq = (uint32_t) s_uint(&c, 4);
        m.timeout = (uint32_t) s_uint(&c, 4);
        m.from = s_str(&c, &m.fromlen);
        m.to = s_str(&c, &m.tolen);
        if (!c.bad && (s_check_address(m.from, m.fromlen) < 0 || s_check_dest(m.to, m.tolen) < 0 ||
                       (m.kind != P_KIND_SEND && m.kind != P_KIND_REQUEST)))
            rc = -EBADMSG;
        m.data = c.p;
        m.size = c.left;
        c.left = 0;
        break;
    case P_REPLY:
        m.cseq = (uint32_t) s_uint(&c, 4);
        m.to = s_str(&c, &m.tolen);
        m.from = s_str(&c, &m.fromlen);
        if (!c.bad && (s_check_address(m.to, m.tolen) < 0 || s_check_address(m.from, m.fromlen) < 0))
            rc = -EBADMSG;
        m.data = c.p;
        m.size = c.left;
        c.left = 0;
        break;
    case P_PUB:
        m.cseq = (uint32_t) s_uint(&c, 4);
        m.to = s_str(&c, &m.tolen);
        m.from = s_str(&c, &m.fromlen);
        if (!c.bad && (wire_check_name(m.to, m.tolen) < 0 || s_check_address(m.from, m.fromlen) < 0))
            rc = -EBADMSG;
        m.data = c.p;
        m.size = c.left;
        c.left = 0;
        break;
    case P_ACK:
        m.cseq = (uint32_t) s_uint(&c, 4);
        m.to = s_str(&c, &m.tolen);
        if (!c.bad && s_check_address(m.to, m.tolen) < 0)
            rc = -EBADMSG;
        break;
    case P_FAIL:
        m.error = (uint32_t) s_uint(&c, 4);
        m.cseq = (uint32_t) s_uint(&c, 4);
        m.kind = (uint8_t) s_uint(&c, 1);
        m.to = s_str(&c, &m.tolen);
        m.name = s_str(&c, &m.namelen);
        m.text = s_str(&c, &m.textlen);
        /* to is empty only in the refusal of a HELLO: another protocol
           version (EPROTO) or another cluster (EACCES). */
        if (!c.bad && (m.error == 0 || m.error >= 4096 ||
                       (m.tolen > 0 ? s_check_address(m.to, m.tolen) < 0
                                    : m.error != EPROTO && m.error != EACCES)))
            rc = -EBADMSG;
        break;
    case P_PING:
    case P_PONG:
        m.stamp = s_uint(&c, 8);
        break;
    case P_BYE:
        break;
    case P_CREDIT:
        m.ack = (uint32_t) s_uint(&c, 4);
        m.credit = (uint32_t) s_uint(&c, 4);
        break;
    case P_BATCH:
        /* Only the framing is checked here: each item is a whole message,
           decoded (and checked) on its own. */
        m.count = (uint16_t) s_uint(&c, 2);
        m.list = c.p;
        if (!c.bad && (m.count < 2 || c.left > PROTO_BATCH_MAX))
            rc = -EBADMSG;
        for (unsigned i = 0; rc == 0 && !c.bad && i < m.count; i++) {
            size_t n = (size_t) s_uint(&c, 4);
            if (c.bad || n < PROTO_HEAD || n > c.left || c.p[0] != PROTO_SIG ||
                (c.p[2] != P_MSG && c.p[2] != P_REPLY && c.p[2] != P_PUB))
                rc = -EBADMSG;
            else {
                c.p += n;
                c.left -= n;
            }
        }
        m.listlen = (size_t) (c.p - m.list);
        break;
    case P_KEY:
        m.stamp = s_uint(&c, 8);
        m.key = c.p;
        if (c.bad || c.left != PROTO_KEY_LEN)
            rc = -EBADMSG;
        c.left = 0;
        break;
    default:
        return -EBADMSG;
    }
    if (rc < 0 || c.bad || c.left != 0)
        return -EBADMSG;
    *ret = m;
    return 0;
}

void proto_batch_next(const uint8_t **at, const uint8_t **item, size_t *len)
{
    *len = wire_get32(*at);
    *item = *at + 4;
    *at += 4 + *len;
}

void proto_list_next(const uint8_t **at, const char **s, size_t *len)
{
    *len = **at;
    *s = (const char *) *at + 1;
    *at += 1 + *len;
}

uint8_t *proto_grow(proto_buf_t *b, size_t n)
{
    if (b->failed || n > SIZE_MAX / 4 - b->len) {
        b->failed = 1;
        return NULL;
    }
    if (b->cap - b->len < n) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n)
            cap *= 2;
        uint8_t *data = realloc(b->data, cap);
        if (!data) {
            b->failed = 1;
            return NULL;
        }
        b->data = data;
        b->cap = cap;
    }
    uint8_t *at = b->data + b->len;
    b->len += n;
    return at;
}

void proto_begin(proto_buf_t *b, uint8_t type, uint8_t flags, uint32_t seq)
{
    b->len = 0;
    b->failed = 0;
    proto_put(b, PROTO_SIG, 1);
    proto_put(b, PROTO_VERSION, 1);
    proto_put(b, type, 1);
    proto_put(b, flags, 1);
    proto_put(b, seq, 4);
}

void proto_bytes(proto_buf_t *b, const void *data, size_t len)
{
    uint8_t *at;
    if (len == 0)
        return;
    if (!b->failed && b->cap - b->len >= len) {
        at = b->data + b->len;
        b->len += len;
    } else if (!(at = proto_grow(b, len)))
        return;
    memcpy(at, data, len);
}

void proto_free(proto_buf_t *b)
{
    free(b->data);
    *b = (proto_buf_t) { 0 };
}
