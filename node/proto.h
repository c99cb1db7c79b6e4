/*  proto.h: the node-to-node codec (docs/protocol-node.md).

    Each ZeroMQ message between nodes is one frame:

      sig:u8 0xA9  version:u8  type:u8  flags:u8  seq:u32  fields...

    Integers are big-endian; str8 is a u8 length and that many bytes; a
    payload runs to the end of the frame. Decoding checks every length
    against the end, the fields each type requires, the syntax of names,
    and rejects trailing bytes; it allocates nothing and returns views. */
#ifndef IPCNET_PROTO_H
#define IPCNET_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_SIG       0xA9
#define PROTO_VERSION   3
#define PROTO_HEAD      8
#define PROTO_ID_LEN    32          /* node ids: 32 lowercase hex digits */
#define PROTO_KEY_LEN   32          /* CURVE public keys */
#define PROTO_KEY_MSG   48          /* a KEY datagram: head, nonce, key */
#define PROTO_LIST_MAX  1024        /* items in one list message */

enum {
    P_HELLO = 1,        /* id, name, cluster, port:u16, incarnation:u64, heartbeat_ms:u32 */
    P_HELLO_ACK = 2,    /* id, name, incarnation:u64 (ROUTER's answer to HELLO) */
    P_NAMES_ADD = 3,    /* count:u16, count x str8 name */
    P_NAMES_DEL = 4,
    P_SUBS_ADD = 5,     /* count:u16, count x str8 pattern */
    P_SUBS_DEL = 6,
    P_PEERS = 7,        /* count:u16, count x (id, name, endpoint, key) */
    P_MSG = 8,          /* kind:u8, cseq:u32, timeout:u32, from, uid:u32, user, to, payload */
    P_REPLY = 9,        /* cseq:u32 (request id), to, from, uid:u32, user, payload */
    P_PUB = 10,         /* cseq:u32 (publisher's seq), topic, from, uid:u32, user, payload */
    P_ACK = 11,         /* cseq:u32, to */
    P_FAIL = 12,        /* error:u32, cseq:u32, what:u8, to, name, text */
    P_PING = 13,        /* stamp:u64 */
    P_PONG = 14,        /* stamp:u64 */
    P_BYE = 15,
    P_CREDIT = 16,      /* ack:u32 (last seq handled), bytes:u32 */
    P_BATCH = 17,       /* count:u16, count x (len:u32, a MSG, REPLY or PUB) */
    P_KEY = 18,         /* nonce:u64, key:32 bytes (UDP only; zeros in a question) */
    /* the store (docs/store.md), 32..39 */
    P_STORE_RECORDS = 32,   /* count:u16, count x record (below) */
    P_STORE_DIGEST = 33,    /* buckets:u16 (PROTO_STORE_BUCKETS), x (count:u32, hash:u64) */
};



#define PROTO_BATCH_MAX (64 * 1024)     /* bytes of items in one BATCH */

/* MSG kinds */
enum { P_KIND_SEND = 1, P_KIND_REQUEST = 2 };

/* Flags */
#define P_F_CONFIRM 0x01    /* MSG: answer ACK once written to the holder's socket */
#define P_F_STORE   0x02    /* HELLO: this node takes STORE_* messages (older ones
                               ignore the bit, and are sent none) */

/* A decoded message; strings and payload are views into the frame. The
   list of NAMES/SUBS/PEERS stays encoded: walk it with proto_list_next. */
typedef struct {
    uint8_t version, type, flags;
    uint32_t seq;
    const char *id;   size_t idlen;
    const char *name; size_t namelen;
    const char *cluster; size_t clusterlen;
    uint16_t port;
    uint64_t incarnation;
    uint32_t heartbeat;
    uint16_t count;
    const uint8_t *list; size_t listlen;
    uint8_t kind;       /* MSG: P_KIND_*; FAIL: the local frame type that failed */
    uint32_t cseq;
    uint32_t timeout;
    uint32_t error;
    const char *from; size_t fromlen;
    uint32_t uid;       /* MSG, REPLY, PUB: the sender's uid on its node (its claim) */
    const char *user; size_t userlen;   /* and its user name there */
    const char *to;   size_t tolen;
    const char *text; size_t textlen;
    uint64_t stamp;     /* PING, PONG; KEY: the nonce */
    const uint8_t *key; /* KEY: 32 bytes */
    uint32_t ack, credit;
    const uint8_t *data; size_t size;
} proto_msg_t;

/* Decodes one frame. Returns 0; -EPROTO if the signature is right but the
   version is not ours (*ret then has version and type); -EBADMSG for
   anything else wrong. */
int proto_decode(const uint8_t *buf, size_t len, proto_msg_t *ret);

/* The next item of a decoded BATCH: a whole message, to proto_decode. */
void proto_batch_next(const uint8_t **at, const uint8_t **item, size_t *len);

/* The next item of a decoded list: a name (NAMES/SUBS), or for PEERS an
   id, name, endpoint and key (32 bytes). Lists were checked by
   proto_decode. */
void proto_list_next(const uint8_t **at, const char **s, size_t *len);

/* A growing buffer to encode into, zeroed before first use. Encoding
   never fails half way: when memory runs out, failed is set and the
   message must not be sent. */
typedef struct {
    uint8_t *data;
    size_t len, cap;
    int failed;
} proto_buf_t;

/* A record of the store: stamp:u64 origin:16 flags:u8 ttl:u32 uid:u32
   key:str8 size:u32 value[size]. A deletion has no value. */
#define PROTO_STORE_BUCKETS   1024
#define PROTO_STORE_VALUE_MAX (16u << 20)
#define PROTO_STORE_DELETED   0x01
#define PROTO_STORE_EPHEMERAL 0x02

typedef struct {
    uint64_t stamp;             /* hybrid logical clock: ms << 16 | counter */
    const uint8_t *origin;      /* 16 bytes: the id of the node that wrote it */
    uint8_t flags;              /* PROTO_STORE_* */
    uint32_t ttl;               /* ms after the stamp's time; 0: none */
    uint32_t uid;               /* the writer's uid on its node */
    const char *key; size_t keylen;
    const uint8_t *value; size_t size;
} proto_record_t;

/* The next record of a decoded STORE_RECORDS (checked by proto_decode). */
void proto_record_next(const uint8_t **at, proto_record_t *ret);

/* Appends one record to a STORE_RECORDS begun with proto_list_begin(). */
void proto_record_add(proto_buf_t *b, const proto_record_t *r);

/* The same record's bytes alone, appended (not counted in a list). */
void proto_record_put(proto_buf_t *b, const proto_record_t *r);

void proto_begin(proto_buf_t *b, uint8_t type, uint8_t flags, uint32_t seq);
void proto_bytes(proto_buf_t *b, const void *data, size_t len);
void proto_free(proto_buf_t *b);

/* Room for n more bytes (growing the buffer), or NULL with failed set. */
uint8_t *proto_grow(proto_buf_t *b, size_t n);

/* Integers and short strings: inline, as every message is made of them. */
static inline void proto_put(proto_buf_t *b, uint64_t v, size_t n)
{
    uint8_t *at;
    if (!b->failed && b->cap - b->len >= n) {
        at = b->data + b->len;
        b->len += n;
    } else if (!(at = proto_grow(b, n)))
        return;
    for (size_t i = 0; i < n; i++)
        at[i] = (uint8_t) (v >> (8 * (n - 1 - i)));
}

static inline void proto_u8(proto_buf_t *b, uint8_t v)   { proto_put(b, v, 1); }
static inline void proto_u16(proto_buf_t *b, uint16_t v) { proto_put(b, v, 2); }
static inline void proto_u32(proto_buf_t *b, uint32_t v) { proto_put(b, v, 4); }
static inline void proto_u64(proto_buf_t *b, uint64_t v) { proto_put(b, v, 8); }

/* A str8: len <= 255, else failed is set. */
static inline void proto_str(proto_buf_t *b, const char *s, size_t len)
{
    if (len > 255) {
        b->failed = 1;
        return;
    }
    proto_put(b, len, 1);
    proto_bytes(b, s, len);
}

/* Encodes m into b, emptied first: its type, flags and seq, then the
   fields of its type as proto_decode fills them (the payload from data and
   size; a list or BATCH from count, list and listlen; KEY's key, zeros
   when NULL). Whether the fields obey their rules is not checked. */
void proto_encode(proto_buf_t *b, const proto_msg_t *m);

/* The same, appended to what b holds (an item of a BATCH). */
void proto_append(proto_buf_t *b, const proto_msg_t *m);

/* How many bytes proto_encode would write for m (0 for an unknown type). */
size_t proto_size(const proto_msg_t *m);

/* A list message (NAMES_*, SUBS_*, PEERS) built item by item: begin, add
   at most PROTO_LIST_MAX items, send if the count is not 0. */
void proto_list_begin(proto_buf_t *b, uint8_t type);
void proto_list_add(proto_buf_t *b, const char *s, size_t len);
void proto_list_add_peer(proto_buf_t *b, const char *id, const char *name,
                         const char *endpoint, const uint8_t key[PROTO_KEY_LEN]);
unsigned proto_list_count(const proto_buf_t *b);

/* A BATCH built item by item (each a MSG, REPLY or PUB with its own seq):
   begin, append items with proto_batch_add, and before sending set the
   count with proto_batch_end. */
void proto_batch_begin(proto_buf_t *b);
void proto_batch_add(proto_buf_t *b, const proto_msg_t *item);
void proto_batch_end(proto_buf_t *b, unsigned count);

/* The seq field of an encoded message, set after encoding. */
static inline void proto_set_seq(proto_buf_t *b, uint32_t seq)
{
    if (b->len >= PROTO_HEAD) {
        b->data[4] = (uint8_t) (seq >> 24);
        b->data[5] = (uint8_t) (seq >> 16);
        b->data[6] = (uint8_t) (seq >> 8);
        b->data[7] = (uint8_t) seq;
    }
}

/* Checks an id: 32 lowercase hex digits. */
int proto_check_id(const char *s, size_t len);

/* n bytes as 2n lowercase hex digits and a NUL. */
void proto_hex(const uint8_t *bytes, size_t n, char *out);

/* 2n hex digits (either case) into n bytes. Returns 0, or -EINVAL at the
   first byte that is not a hex digit (hex is read no further). */
int proto_unhex(const char *hex, size_t n, uint8_t *out);

/* The id of a public key: its first 16 bytes in lowercase hex. */
void proto_key_id(const uint8_t *key, char id[PROTO_ID_LEN + 1]);

#endif
