/*  proto.c: the node-to-node codec: decode and encode of every message,
    from one table of each message's fields. A read cursor checks every
    field against the end of the frame; a frame with bytes left over is
    bad. */

#include "proto.h"
#include "wire.h"

#include <errno.h>
#include <stddef.h>
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

/* Each message's fields in order, as one table that the decoder and the
   encoder both walk: a message is declared once. */
enum {
    F_END, F_ID, F_NAME, F_CLUSTER, F_PORT, F_INCARNATION, F_HEARTBEAT, F_LIST, F_KIND,
    F_CSEQ, F_TIMEOUT, F_FROM, F_TO, F_PAYLOAD, F_ERROR, F_TEXT, F_STAMP, F_ACK, F_CREDIT,
    F_BATCH, F_KEY, F_UID, F_USER, F_RECORDS, F_DIGEST,
};

#define FIELDS_MAX 9

#define P_TYPES (P_STORE_DIGEST + 1)

static const uint8_t s_layout[P_TYPES][FIELDS_MAX] = {
    [P_HELLO]     = { F_ID, F_NAME, F_CLUSTER, F_PORT, F_INCARNATION, F_HEARTBEAT },
    [P_HELLO_ACK] = { F_ID, F_NAME, F_INCARNATION },
    [P_NAMES_ADD] = { F_LIST },
    [P_NAMES_DEL] = { F_LIST },
    [P_SUBS_ADD]  = { F_LIST },
    [P_SUBS_DEL]  = { F_LIST },
    [P_PEERS]     = { F_LIST },
    [P_MSG]       = { F_KIND, F_CSEQ, F_TIMEOUT, F_FROM, F_UID, F_USER, F_TO, F_PAYLOAD },
    [P_REPLY]     = { F_CSEQ, F_TO, F_FROM, F_UID, F_USER, F_PAYLOAD },
    [P_PUB]       = { F_CSEQ, F_TO, F_FROM, F_UID, F_USER, F_PAYLOAD },
    [P_ACK]       = { F_CSEQ, F_TO },
    [P_FAIL]      = { F_ERROR, F_CSEQ, F_KIND, F_TO, F_NAME, F_TEXT },
    [P_PING]      = { F_STAMP },
    [P_PONG]      = { F_STAMP },
    [P_BYE]       = { F_END },
    [P_CREDIT]    = { F_ACK, F_CREDIT },
    [P_BATCH]     = { F_BATCH },
    [P_KEY]       = { F_STAMP, F_KEY },
    [P_STORE_RECORDS] = { F_RECORDS },
    [P_STORE_DIGEST]  = { F_DIGEST },
};

/* Where each field lives in proto_msg_t: an integer of width bytes, or
   (width 0) a str8 with its length at lenoff. */
static const struct {
    uint8_t width;
    uint16_t off, lenoff;
} s_field[] = {
#define STR(f) { 0, offsetof(proto_msg_t, f), offsetof(proto_msg_t, f##len) }
#define INT(f) { sizeof ((proto_msg_t *) 0)->f, offsetof(proto_msg_t, f), 0 }
    [F_ID] = STR(id), [F_NAME] = STR(name), [F_CLUSTER] = STR(cluster),
    [F_FROM] = STR(from), [F_TO] = STR(to), [F_TEXT] = STR(text), [F_USER] = STR(user),
    [F_PORT] = INT(port), [F_INCARNATION] = INT(incarnation), [F_HEARTBEAT] = INT(heartbeat),
    [F_KIND] = INT(kind), [F_CSEQ] = INT(cseq), [F_TIMEOUT] = INT(timeout),
    [F_ERROR] = INT(error), [F_STAMP] = INT(stamp), [F_ACK] = INT(ack), [F_CREDIT] = INT(credit),
    [F_UID] = INT(uid),
#undef STR
#undef INT
};

static void s_set_int(proto_msg_t *m, size_t off, size_t width, uint64_t v)
{
    uint8_t *at = (uint8_t *) m + off;
    switch (width) {
    case 1: *at = (uint8_t) v; break;
    case 2: { uint16_t x = (uint16_t) v; memcpy(at, &x, 2); break; }
    case 4: { uint32_t x = (uint32_t) v; memcpy(at, &x, 4); break; }
    default: memcpy(at, &v, 8); break;
    }
}

static uint64_t s_get_int(const proto_msg_t *m, size_t off, size_t width)
{
    const uint8_t *at = (const uint8_t *) m + off;
    switch (width) {
    case 1: return *at;
    case 2: { uint16_t x; memcpy(&x, at, 2); return x; }
    case 4: { uint32_t x; memcpy(&x, at, 4); return x; }
    default: { uint64_t x; memcpy(&x, at, 8); return x; }
    }
}

/* A BATCH's framing: each item a whole data message (decoded on its own). */
static int s_batch(cur_t *c, proto_msg_t *m)
{
    m->count = (uint16_t) s_uint(c, 2);
    m->list = c->p;
    if (c->bad || m->count < 2 || c->left > PROTO_BATCH_MAX)
        return -EBADMSG;
    for (unsigned i = 0; i < m->count; i++) {
        size_t n = (size_t) s_uint(c, 4);
        if (c->bad || n < PROTO_HEAD || n > c->left || c->p[0] != PROTO_SIG ||
            (c->p[2] != P_MSG && c->p[2] != P_REPLY && c->p[2] != P_PUB))
            return -EBADMSG;
        c->p += n;
        c->left -= n;
    }
    m->listlen = (size_t) (c->p - m->list);
    return 0;
}

static void s_list_counted(proto_buf_t *b);

/* A STORE_RECORDS list: each record's framing, key, flags and size. */
static int s_records(cur_t *c, proto_msg_t *m)
{
    m->count = (uint16_t) s_uint(c, 2);
    m->list = c->p;
    if (c->bad || m->count == 0)
        return -EBADMSG;
    for (unsigned i = 0; i < m->count; i++) {
        s_uint(c, 8);
        if (c->bad || c->left < 16)
            return -EBADMSG;
        c->p += 16;
        c->left -= 16;
        uint8_t flags = (uint8_t) s_uint(c, 1);
        s_uint(c, 8);           /* ttl, uid */
        size_t klen;
        const char *key = s_str(c, &klen);
        uint64_t size = s_uint(c, 4);
        if (c->bad || (flags & ~(PROTO_STORE_DELETED | PROTO_STORE_EPHEMERAL)) ||
            wire_check_name(key, klen) < 0 || size > PROTO_STORE_VALUE_MAX ||
            size > c->left || ((flags & PROTO_STORE_DELETED) && size))
            return -EBADMSG;
        c->p += size;
        c->left -= size;
    }
    m->listlen = (size_t) (c->p - m->list);
    return 0;
}

void proto_record_next(const uint8_t **at, proto_record_t *r)
{
    const uint8_t *p = *at;
    r->stamp = (uint64_t) wire_get32(p) << 32 | wire_get32(p + 4);
    r->origin = p + 8;
    r->flags = p[24];
    r->ttl = wire_get32(p + 25);
    r->uid = wire_get32(p + 29);
    r->keylen = p[33];
    r->key = (const char *) p + 34;
    r->size = wire_get32(p + 34 + r->keylen);
    r->value = p + 38 + r->keylen;
    *at = r->value + r->size;
}

void proto_record_add(proto_buf_t *b, const proto_record_t *r)
{
    proto_record_put(b, r);
    s_list_counted(b);
}

void proto_record_put(proto_buf_t *b, const proto_record_t *r)
{
    proto_u64(b, r->stamp);
    proto_bytes(b, r->origin, 16);
    proto_u8(b, r->flags);
    proto_u32(b, r->ttl);
    proto_u32(b, r->uid);
    proto_str(b, r->key, r->keylen);
    proto_u32(b, (uint32_t) r->size);
    proto_bytes(b, r->value, r->size);
}

/* The fields of m's type, read in order; the rest of the frame for a
   payload. Returns 0 or -EBADMSG. */
static int s_read_fields(cur_t *c, proto_msg_t *m)
{
    for (const uint8_t *f = s_layout[m->type]; *f != F_END && f < s_layout[m->type] + FIELDS_MAX; f++) {
        int rc = 0;
        switch (*f) {
        case F_LIST:
            rc = s_list(c, m, m->type == P_PEERS, m->type == P_SUBS_ADD || m->type == P_SUBS_DEL);
            break;
        case F_BATCH:
            rc = s_batch(c, m);
            break;
        case F_RECORDS:
            rc = s_records(c, m);
            break;
        case F_DIGEST:
            m->count = (uint16_t) s_uint(c, 2);
            m->list = c->p;
            m->listlen = c->left;
            if (m->count != PROTO_STORE_BUCKETS || c->left != (size_t) m->count * 12)
                rc = -EBADMSG;
            c->left = 0;
            break;
        case F_PAYLOAD:
            m->data = c->p;
            m->size = c->left;
            c->left = 0;
            break;
        case F_KEY:
            m->key = c->p;
            if (c->left != PROTO_KEY_LEN)
                rc = -EBADMSG;
            c->left = 0;
            break;
        default:
            if (s_field[*f].width) {
                s_set_int(m, s_field[*f].off, s_field[*f].width, s_uint(c, s_field[*f].width));
            } else {
                size_t len;
                const char *s = s_str(c, &len);
                memcpy((uint8_t *) m + s_field[*f].off, &s, sizeof s);
                memcpy((uint8_t *) m + s_field[*f].lenoff, &len, sizeof len);
            }
        }
        if (rc < 0 || c->bad)
            return -EBADMSG;
    }
    return 0;
}

/* A user name as a node tells it: up to 32 bytes, printable, no blank. */
static int s_check_user(const char *s, size_t len)
{
    return wire_user_ok(s, len) ? 0 : -EINVAL;
}

/* The rules of each type beyond its framing. */
static int s_check(const proto_msg_t *m)
{
    if ((m->type == P_MSG || m->type == P_REPLY || m->type == P_PUB) &&
        s_check_user(m->user, m->userlen) < 0)
        return -EBADMSG;
    switch (m->type) {
    case P_HELLO:
        if (wire_check_name(m->cluster, m->clusterlen) < 0 || m->port == 0 || m->heartbeat == 0)
            return -EBADMSG;
        /* fall through */
    case P_HELLO_ACK:
        return proto_check_id(m->id, m->idlen) < 0 || wire_check_name(m->name, m->namelen) < 0
            ? -EBADMSG : 0;
    case P_MSG:
        return s_check_address(m->from, m->fromlen) < 0 || s_check_dest(m->to, m->tolen) < 0 ||
               (m->kind != P_KIND_SEND && m->kind != P_KIND_REQUEST) ? -EBADMSG : 0;
    case P_REPLY:
        return s_check_address(m->to, m->tolen) < 0 || s_check_address(m->from, m->fromlen) < 0
            ? -EBADMSG : 0;
    case P_PUB:
        return wire_check_name(m->to, m->tolen) < 0 || s_check_address(m->from, m->fromlen) < 0
            ? -EBADMSG : 0;
    case P_ACK:
        return s_check_address(m->to, m->tolen) < 0 ? -EBADMSG : 0;
    case P_FAIL:
        /* to is empty only in the refusal of a HELLO: another protocol
           version (EPROTO), another cluster (EACCES), no room (EUSERS). */
        return m->error == 0 || m->error >= 4096 ||
               (m->tolen > 0 ? s_check_address(m->to, m->tolen) < 0
                             : m->error != EPROTO && m->error != EACCES && m->error != EUSERS)
            ? -EBADMSG : 0;
    default:
        return 0;
    }
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
    if (m.type == 0 || m.type >= P_TYPES || (s_layout[m.type][0] == F_END && m.type != P_BYE))
        return -EBADMSG;
    cur_t c = { buf + PROTO_HEAD, len - PROTO_HEAD, 0 };
    if (s_read_fields(&c, &m) < 0 || c.left != 0 || s_check(&m) < 0)
        return -EBADMSG;
    *ret = m;
    return 0;
}

void proto_append(proto_buf_t *b, const proto_msg_t *m)
{
    proto_put(b, PROTO_SIG, 1);
    proto_put(b, PROTO_VERSION, 1);
    proto_put(b, m->type, 1);
    proto_put(b, m->flags, 1);
    proto_put(b, m->seq, 4);
    if (m->type == 0 || m->type >= P_TYPES || (s_layout[m->type][0] == F_END && m->type != P_BYE)) {
        b->failed = 1;
        return;
    }
    for (const uint8_t *f = s_layout[m->type]; *f != F_END && f < s_layout[m->type] + FIELDS_MAX; f++) {
        switch (*f) {
        case F_LIST:
        case F_BATCH:
        case F_RECORDS:
        case F_DIGEST:
            proto_u16(b, m->count);
            proto_bytes(b, m->list, m->listlen);
            break;
        case F_PAYLOAD:
            proto_bytes(b, m->data, m->size);
            break;
        case F_KEY: {
            static const uint8_t zero[PROTO_KEY_LEN];
            proto_bytes(b, m->key ? m->key : zero, PROTO_KEY_LEN);
            break;
        }
        default:
            if (s_field[*f].width) {
                proto_put(b, s_get_int(m, s_field[*f].off, s_field[*f].width), s_field[*f].width);
            } else {
                const char *s;
                size_t slen;
                memcpy(&s, (const uint8_t *) m + s_field[*f].off, sizeof s);
                memcpy(&slen, (const uint8_t *) m + s_field[*f].lenoff, sizeof slen);
                proto_str(b, s ? s : "", s ? slen : 0);
            }
        }
    }
}

size_t proto_size(const proto_msg_t *m)
{
    if (m->type == 0 || m->type >= P_TYPES || (s_layout[m->type][0] == F_END && m->type != P_BYE))
        return 0;
    size_t n = PROTO_HEAD;
    for (const uint8_t *f = s_layout[m->type]; *f != F_END && f < s_layout[m->type] + FIELDS_MAX; f++)
        switch (*f) {
        case F_LIST:
        case F_BATCH:
        case F_RECORDS:
        case F_DIGEST:
            n += 2 + m->listlen;
            break;
        case F_PAYLOAD:
            n += m->size;
            break;
        case F_KEY:
            n += PROTO_KEY_LEN;
            break;
        default:
            if (s_field[*f].width)
                n += s_field[*f].width;
            else {
                size_t slen;
                memcpy(&slen, (const uint8_t *) m + s_field[*f].lenoff, sizeof slen);
                n += 1 + slen;
            }
        }
    return n;
}

void proto_encode(proto_buf_t *b, const proto_msg_t *m)
{
    b->len = 0;
    b->failed = 0;
    proto_append(b, m);
}

void proto_list_begin(proto_buf_t *b, uint8_t type)
{
    proto_begin(b, type, 0, 0);
    proto_u16(b, 0);
}

static void s_list_counted(proto_buf_t *b)
{
    if (b->failed || b->len < PROTO_HEAD + 2)
        return;
    unsigned n = proto_list_count(b) + 1;
    b->data[PROTO_HEAD] = (uint8_t) (n >> 8);
    b->data[PROTO_HEAD + 1] = (uint8_t) n;
}

void proto_list_add(proto_buf_t *b, const char *s, size_t len)
{
    proto_str(b, s, len);
    s_list_counted(b);
}

void proto_list_add_peer(proto_buf_t *b, const char *id, const char *name,
                         const char *endpoint, const uint8_t key[PROTO_KEY_LEN])
{
    proto_str(b, id, PROTO_ID_LEN);
    proto_str(b, name, strlen(name));
    proto_str(b, endpoint, strlen(endpoint));
    proto_str(b, (const char *) key, PROTO_KEY_LEN);
    s_list_counted(b);
}

unsigned proto_list_count(const proto_buf_t *b)
{
    return b->len >= PROTO_HEAD + 2
        ? (unsigned) b->data[PROTO_HEAD] << 8 | b->data[PROTO_HEAD + 1] : 0;
}

void proto_batch_begin(proto_buf_t *b)
{
    proto_list_begin(b, P_BATCH);
}

void proto_batch_add(proto_buf_t *b, const proto_msg_t *item)
{
    /* The item's length is known once it is written. */
    size_t at = b->len;
    proto_u32(b, 0);
    proto_append(b, item);
    if (!b->failed) {
        uint32_t n = (uint32_t) (b->len - at - 4);
        b->data[at] = (uint8_t) (n >> 24);
        b->data[at + 1] = (uint8_t) (n >> 16);
        b->data[at + 2] = (uint8_t) (n >> 8);
        b->data[at + 3] = (uint8_t) n;
    }
}

void proto_batch_end(proto_buf_t *b, unsigned count)
{
    if (b->failed || b->len < PROTO_HEAD + 2)
        return;
    b->data[PROTO_HEAD] = (uint8_t) (count >> 8);
    b->data[PROTO_HEAD + 1] = (uint8_t) count;
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
