/*  wire.c: the local wire codec. Every length is checked against the end
    of the buffer before it is used; nothing is allocated. */

#include "wire.h"

#include <errno.h>
#include <string.h>

/* What each frame type carries: string 1 and 2 required (R) or allowed (A),
   payload allowed (P). A type with no rule is unknown. */
enum { R1 = 1, A1 = 2, R2 = 4, A2 = 8, P = 16, KNOWN = 32, F = 64 };

static const uint8_t s_rules[256] = {
    [WIRE_HELLO]       = KNOWN | A1,
    [WIRE_BIND]        = KNOWN | R1,
    [WIRE_UNBIND]      = KNOWN | R1,
    [WIRE_SUBSCRIBE]   = KNOWN | R1,
    [WIRE_UNSUBSCRIBE] = KNOWN | R1,
    [WIRE_WATCH]       = KNOWN | R1,
    [WIRE_UNWATCH]     = KNOWN | R1,
    [WIRE_SEND]        = KNOWN | R1 | P,
    [WIRE_REQUEST]     = KNOWN | R1 | P,
    [WIRE_REPLY]       = KNOWN | R1 | P,
    [WIRE_PUBLISH]     = KNOWN | R1 | P,
    [WIRE_QUERY]       = KNOWN | A1,
    [WIRE_MONITOR]     = KNOWN | A1,
    [WIRE_WELCOME]     = KNOWN | R1 | R2 | P,
    [WIRE_OK]          = KNOWN | P,
    [WIRE_ERROR]       = KNOWN | A1 | A2,
    [WIRE_MESSAGE]     = KNOWN | R1 | R2 | F | P,
    [WIRE_DELIVER_REQ] = KNOWN | R1 | R2 | F | P,
    [WIRE_DELIVER_REP] = KNOWN | R1 | F | P,
    [WIRE_PUBLICATION] = KNOWN | R1 | R2 | F | P,
    [WIRE_EVENT]       = KNOWN | R1 | R2,
    [WIRE_MONITORED]   = KNOWN | A1 | A2 | F | P,
    /* the store (docs/store.md) */
    [WIRE_PUT]         = KNOWN | R1 | P,
    [WIRE_GET]         = KNOWN | R1,
    [WIRE_DEL]         = KNOWN | R1 | P,
    [WIRE_KEYS]        = KNOWN | R1,
    [WIRE_WATCH_KEYS]  = KNOWN | R1,
    [WIRE_UNWATCH_KEYS] = KNOWN | R1,
    [WIRE_KEY_EVENT]   = KNOWN | R1 | A2 | P,
};

ssize_t wire_peek(const uint8_t *buf, size_t len, size_t max_frame)
{
    if (len < 5)
        return 0;
    if (buf[4] != WIRE_SIG)
        return -EBADMSG;
    uint32_t size = wire_get32(buf);
    if (size < WIRE_MIN - 4)
        return -EBADMSG;
    if ((uint64_t) size + 4 > max_frame)
        return -EMSGSIZE;
    return (ssize_t) size + 4;
}

int wire_user_ok(const char *s, size_t len)
{
    if (len > WIRE_USER_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((uint8_t) s[i] <= 0x20 || (uint8_t) s[i] >= 0x7f)
            return 0;
    return 1;
}

int wire_decode(const uint8_t *buf, size_t len, wire_frame_t *ret)
{
    if (len < WIRE_MIN || buf[4] != WIRE_SIG || (uint64_t) wire_get32(buf) + 4 != len)
        return -EBADMSG;
    uint8_t rule = s_rules[buf[5]];
    if (!(rule & KNOWN))
        return -EBADMSG;

    size_t at = WIRE_HEAD;
    size_t l1 = buf[at++];
    if (l1 > len - at - 1)          /* room for s1 and len2 */
        return -EBADMSG;
    const char *s1 = (const char *) buf + at;
    at += l1;
    size_t l2 = buf[at++];
    if (l2 > len - at)
        return -EBADMSG;
    const char *s2 = (const char *) buf + at;
    at += l2;
    wire_from_t from = { 0, "", 0, NULL };
    if (rule & F) {
        /* uid, user (printable, no blank), node id */
        if (len - at < 4 + 1 + WIRE_NODE_ID)
            return -EBADMSG;
        from.uid = wire_get32(buf + at);
        from.userlen = buf[at + 4];
        at += 5;
        if (from.userlen > WIRE_USER_MAX || len - at < from.userlen + WIRE_NODE_ID)
            return -EBADMSG;
        from.user = (const char *) buf + at;
        if (!wire_user_ok(from.user, from.userlen))
            return -EBADMSG;
        at += from.userlen;
        from.node_id = buf + at;
        at += WIRE_NODE_ID;
    }
    size_t size = len - at;

    if ((rule & R1 && l1 == 0) || (!(rule & (R1 | A1)) && l1 > 0) ||
        (rule & R2 && l2 == 0) || (!(rule & (R2 | A2)) && l2 > 0) ||
        (!(rule & P) && size > 0))
        return -EBADMSG;

    ret->type = buf[5];
    ret->flags = (uint16_t) (buf[6] << 8 | buf[7]);
    ret->seq = wire_get32(buf + 8);
    ret->aux = wire_get32(buf + 12);
    ret->s1 = s1;
    ret->s1len = l1;
    ret->s2 = s2;
    ret->s2len = l2;
    ret->from = from;
    ret->data = buf + at;
    ret->size = size;
    return 0;
}

int wire_has_from(uint8_t type)
{
    return (s_rules[type] & F) != 0;
}

size_t wire_encode_from(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                        uint32_t aux, const char *s1, size_t s1len,
                        const char *s2, size_t s2len, const wire_from_t *from,
                        size_t payload)
{
    if (s1len > WIRE_NAME_MAX)
        s1len = WIRE_NAME_MAX;
    if (s2len > WIRE_NAME_MAX)
        s2len = WIRE_NAME_MAX;
    out[4] = WIRE_SIG;
    out[5] = type;
    out[6] = (uint8_t) (flags >> 8);
    out[7] = (uint8_t) flags;
    wire_put32(out + 8, seq);
    wire_put32(out + 12, aux);
    out[16] = (uint8_t) s1len;
    if (s1len)
        wire_copy(out + 17, s1, s1len);
    out[17 + s1len] = (uint8_t) s2len;
    if (s2len)
        wire_copy(out + 18 + s1len, s2, s2len);
    size_t head = WIRE_MIN + s1len + s2len;
    if (s_rules[type] & F) {
        static const uint8_t nobody[WIRE_NODE_ID];
        size_t ulen = from && from->userlen <= WIRE_USER_MAX ? from->userlen
                    : from ? WIRE_USER_MAX : 0;
        uint8_t *at = out + head;
        wire_put32(at, from ? from->uid : 0xFFFFFFFFu);
        at[4] = (uint8_t) ulen;
        if (ulen)
            wire_copy(at + 5, from->user, ulen);
        memcpy(at + 5 + ulen, from && from->node_id ? from->node_id : nobody, WIRE_NODE_ID);
        head += 5 + ulen + WIRE_NODE_ID;
    }
    wire_put32(out, (uint32_t) (head - 4 + payload));
    return head;
}

size_t wire_encode(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                   uint32_t aux, const char *s1, size_t s1len,
                   const char *s2, size_t s2len, size_t payload)
{
    return wire_encode_from(out, type, flags, seq, aux, s1, s1len, s2, s2len, NULL, payload);
}

static int s_namechar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' || c == '/';
}

int wire_check_name(const char *s, size_t len)
{
    if (len == 0 || len > WIRE_NAME_MAX || s[0] == '.' || s[0] == '-')
        return -EINVAL;
    for (size_t i = 0; i < len; i++)
        if (!s_namechar(s[i]))
            return -EINVAL;
    return 0;
}

int wire_check_pattern(const char *s, size_t len)
{
    /* The star counts too: a longer pattern would be cut by wire_encode()
       into a different one. */
    if (len > WIRE_NAME_MAX)
        return -EINVAL;
    if (len == 1 && s[0] == '*')
        return 0;
    if (len > 1 && s[len - 1] == '*')
        len--;
    return wire_check_name(s, len);
}

int wire_match(const char *pattern, size_t plen, const char *name, size_t nlen)
{
    if (plen > 0 && pattern[plen - 1] == '*')
        return nlen >= plen - 1 && memcmp(pattern, name, plen - 1) == 0;
    return plen == nlen && memcmp(pattern, name, plen) == 0;
}

int wire_parse_dest(const char *s, size_t len, uint64_t *ret_client,
                    size_t *ret_namelen, const char **ret_node,
                    size_t *ret_nodelen)
{
    /* Each part may be a valid name and the whole still too long for the
       one string it travels in. */
    if (len > WIRE_NAME_MAX)
        return -EINVAL;
    const char *at = memchr(s, '@', len);
    size_t namelen = at ? (size_t) (at - s) : len;
    const char *node = at ? at + 1 : s + len;
    size_t nodelen = at ? len - namelen - 1 : 0;
    if (at && wire_check_name(node, nodelen) < 0)
        return -EINVAL;

    uint64_t client = 0;
    if (namelen > 0 && s[0] == ':') {
        if (namelen < 2 || namelen > 20)
            return -EINVAL;
        for (size_t i = 1; i < namelen; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -EINVAL;
            uint64_t next = client * 10 + (uint64_t) (s[i] - '0');
            if (next < client)
                return -EINVAL;
            client = next;
        }
        if (client == 0)
            return -EINVAL;
    } else if (wire_check_name(s, namelen) < 0)
        return -EINVAL;

    *ret_client = client;
    *ret_namelen = namelen;
    *ret_node = node;
    *ret_nodelen = nodelen;
    return 0;
}
