/*  wire.h: the local wire codec, shared by libipcnet and ipc-node.

    Every frame on the Unix socket has the same shape (docs/protocol-local.md):

      size:u32  sig:u8  type:u8  flags:u16  seq:u32  aux:u32
      len1:u8 str1[len1]  len2:u8 str2[len2]  [from]  payload[...]

    where the frames that deliver a message (MESSAGE, DELIVER_REQ,
    DELIVER_REP, PUBLICATION) carry who sent it:

      from = uid:u32  len3:u8 user[len3]  node_id[16]

    All integers are big-endian. `size` counts the bytes after itself, so a
    whole frame is 4 + size bytes. Nothing here allocates; decoding returns
    views into the caller's buffer. Internal: not installed.
*/
#ifndef IPCNET_WIRE_H
#define IPCNET_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define WIRE_SIG        0xA7        /* every frame's fifth byte */
#define WIRE_VERSION    2           /* protocol version, sent in HELLO */
#define WIRE_HEAD       16          /* size..aux */
#define WIRE_MIN        (WIRE_HEAD + 2)     /* a frame with two empty strings */
#define WIRE_NAME_MAX   255         /* longest string field */
#define WIRE_USER_MAX   32          /* a user name, as Linux allows */
#define WIRE_NODE_ID    16          /* a node's id: its key's first 16 bytes */
#define WIRE_FROM_MAX   (4 + 1 + WIRE_USER_MAX + WIRE_NODE_ID)
#define WIRE_HEAD_MAX   (WIRE_MIN + 2 * WIRE_NAME_MAX + WIRE_FROM_MAX)  /* all but the payload */
#define WIRE_CLIENT_HEAD_MAX (WIRE_MIN + 2 * WIRE_NAME_MAX)  /* a client's frames: no sender */

/* Frame types. Client to node below 0x80; node to client from 0x80. */
enum {
    WIRE_HELLO       = 0x01,    /* s1 label?          aux version       */
    WIRE_BIND        = 0x02,    /* s1 name                              */
    WIRE_UNBIND      = 0x03,    /* s1 name                              */
    WIRE_SUBSCRIBE   = 0x04,    /* s1 topic pattern                     */
    WIRE_UNSUBSCRIBE = 0x05,    /* s1 topic pattern                     */
    WIRE_WATCH       = 0x06,    /* s1 name pattern                      */
    WIRE_UNWATCH     = 0x07,    /* s1 name pattern                      */
    WIRE_SEND        = 0x08,    /* s1 destination, payload              */
    WIRE_REQUEST     = 0x09,    /* s1 destination, aux timeout ms, payload */
    WIRE_REPLY       = 0x0A,    /* s1 requester address, aux request seq, payload */
    WIRE_PUBLISH     = 0x0B,    /* s1 topic, payload                    */
    WIRE_QUERY       = 0x0C,    /* aux what (WIRE_Q_*), s1 its argument? */
    WIRE_MONITOR     = 0x0D,    /* s1 name pattern? (absent: all)       */
    /* the store (docs/store.md): 0x10..0x17, answers 0x90..0x97 */
    WIRE_PUT         = 0x10,    /* s1 key, aux ttl ms, flags WIRE_F_EPHEMERAL|WIRE_F_IF,
                                   payload: expected version:u64, value */
    WIRE_GET         = 0x11,    /* s1 key; OK payload: version:u64, value */
    WIRE_DEL         = 0x12,    /* s1 key, flags WIRE_F_IF, payload: expected version:u64 */
    WIRE_KEYS        = 0x13,    /* s1 pattern; OK parts: key TAB version TAB size */
    WIRE_WATCH_KEYS  = 0x14,    /* s1 pattern; OK, then KEY_EVENTs */
    WIRE_UNWATCH_KEYS = 0x15,   /* s1 pattern                           */
    WIRE_KEY_EVENT   = 0x90,    /* aux WIRE_KEV_*, s1 key, s2 origin node id?,
                                   payload: version:u64, value */

    WIRE_WELCOME     = 0x81,    /* s1 our address, s2 node name, aux max message */
    WIRE_OK          = 0x82,    /* seq of the command, payload (QUERY)  */
    WIRE_ERROR       = 0x83,    /* seq, aux errno, flags command type, s1 name, s2 text */
    WIRE_MESSAGE     = 0x88,    /* s1 sender address, s2 name as sent, payload */
    WIRE_DELIVER_REQ = 0x89,    /* seq request id, aux timeout ms, s1 requester, s2 name, payload */
    WIRE_DELIVER_REP = 0x8A,    /* seq request id, s1 replier address, payload */
    WIRE_PUBLICATION = 0x8B,    /* s1 topic, s2 publisher address, payload */
    WIRE_EVENT       = 0x8C,    /* aux WIRE_EV_*, s1 name, s2 node */
    WIRE_MONITORED   = 0x8D,    /* aux kind (0: notes lost), s1 to, s2 from, sender,
                                   payload: BE u32 size, then its first bytes */
};

/* MONITORED: the kinds, and the most of a message's bytes shown. */
enum { WIRE_MON_LOST = 0, WIRE_MON_SEND = 1, WIRE_MON_REQUEST = 2, WIRE_MON_REPLY = 3,
       WIRE_MON_PUBLISH = 4 };
#define WIRE_MON_BYTES 64

/* Flags of SEND and PUBLISH. */
#define WIRE_F_CONFIRM  0x0001  /* answer OK once written to the receiver's socket */

/* Flag of OK: a part of the answer; more OKs with the same seq follow. */
#define WIRE_F_MORE     0x0002

/* Shared memory (docs/protocol-local.md, section 4.5). On SEND, REQUEST,
   REPLY, PUBLISH, MESSAGE, DELIVER_REQ, DELIVER_REP and PUBLICATION: the
   payload is not inline but in a sealed memfd passed with SCM_RIGHTS on
   the sendmsg that begins with this frame's first byte; the frame's own
   payload is WIRE_SHM_REF bytes, the region's size as BE u64. On HELLO:
   the client takes such frames. WELCOME's payload, when present, is the
   node's threshold as BE u32 (0: it takes no memfds). */
#define WIRE_F_SHM      0x0004
#define WIRE_SHM_REF    8

/* QUERY subjects; the OK payload is text, one record a line, fields by tab. */
enum { WIRE_Q_SERVICES = 1, WIRE_Q_PEERS = 2, WIRE_Q_STATS = 3, WIRE_Q_CLIENTS = 4,
       WIRE_Q_DIAGNOSE = 5 };    /* DIAGNOSE: s1 names the peer */

/* EVENT kinds. */
enum { WIRE_EV_NAME_UP = 1, WIRE_EV_NAME_DOWN = 2, WIRE_EV_PEER_UP = 3, WIRE_EV_PEER_DOWN = 4 };

/* Flags of PUT and DEL; the kinds of KEY_EVENT. */
#define WIRE_F_EPHEMERAL 0x0100 /* PUT: gone when this client or its node goes */
#define WIRE_F_IF        0x0200 /* the payload's version must be the key's (0: none) */
enum { WIRE_KEV_PUT = 1, WIRE_KEV_DEL = 2 };

/* Who sent a delivered message: its uid and user name on its node, and
   that node's id. From another node, uid and user are that node's claim. */
typedef struct {
    uint32_t uid;
    const char *user;
    size_t userlen;
    const uint8_t *node_id;     /* WIRE_NODE_ID bytes */
} wire_from_t;

/* A decoded frame: views into the buffer it was decoded from. */
typedef struct {
    uint8_t type;
    uint16_t flags;
    uint32_t seq;
    uint32_t aux;
    const char *s1;
    size_t s1len;
    const char *s2;
    size_t s2len;
    wire_from_t from;           /* MESSAGE, DELIVER_REQ, DELIVER_REP, PUBLICATION */
    const uint8_t *data;
    size_t size;
} wire_frame_t;

/* Looks at the first bytes of a stream. Returns the whole length of the
   frame that starts at buf (>= WIRE_MIN), 0 if fewer than 5 bytes are
   there yet, -EBADMSG if the signature or size is wrong, or -EMSGSIZE if
   the frame would be longer than max_frame bytes. */
ssize_t wire_peek(const uint8_t *buf, size_t len, size_t max_frame);

/* Is s a user name a frame may carry: at most WIRE_USER_MAX bytes, each
   0x21..0x7E (printable, no blank)? 1 or 0. */
int wire_user_ok(const char *s, size_t len);

/* Decodes one complete frame of exactly len bytes into *ret. Checks the
   signature, the size, the string lengths, the type and which fields that
   type requires; *ret is untouched on failure. Returns 0 or -EBADMSG. */
int wire_decode(const uint8_t *buf, size_t len, wire_frame_t *ret);

/* Writes the head of a frame (all but the payload) into out, which has room
   for WIRE_HEAD_MAX bytes. Strings longer than WIRE_NAME_MAX are cut; the
   caller checks them first. Returns the number of bytes written. A frame
   that delivers a message gets its sender from wire_encode_from; this one
   gives it an unknown sender (uid 0xFFFFFFFF, no user, node id zero). */
size_t wire_encode(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                   uint32_t aux, const char *s1, size_t s1len,
                   const char *s2, size_t s2len, size_t payload);

/* The same, for a frame that delivers a message, with its sender. A user
   name longer than WIRE_USER_MAX is cut. */
size_t wire_encode_from(uint8_t *out, uint8_t type, uint16_t flags, uint32_t seq,
                        uint32_t aux, const char *s1, size_t s1len,
                        const char *s2, size_t s2len, const wire_from_t *from,
                        size_t payload);

/* Does this frame type deliver a message (and so carry its sender)? */
int wire_has_from(uint8_t type);

/* Service names and topics: 1..255 bytes of [A-Za-z0-9._/-], not starting
   with '.' or '-'. Returns 0 or -EINVAL. */
int wire_check_name(const char *s, size_t len);

/* A subscription or watch pattern: "*" (everything), a name, or a name
   prefix followed by '*'. Returns 0 or -EINVAL. */
int wire_check_pattern(const char *s, size_t len);

/* Does name match pattern (as checked by wire_check_pattern)? */
int wire_match(const char *pattern, size_t plen, const char *name, size_t nlen);

/* A destination: "name", "name@node", ":N" or ":N@node". Splits it.
   ret_client is the N of a unique address, 0 for a service name. The node
   part is empty when absent. Returns 0 or -EINVAL. */
int wire_parse_dest(const char *s, size_t len, uint64_t *ret_client,
                    size_t *ret_namelen, const char **ret_node,
                    size_t *ret_nodelen);

/* memcpy for the short strings of a frame. Their lengths are known to be
   at most 255, and with that knowledge gcc inlines the copy as "rep movs",
   which costs more than the rest of the frame's encoding together. The
   empty asm hides the bound, so the call goes to libc's memcpy. */
static inline void wire_copy(void *dst, const void *src, size_t len)
{
    __asm__("" : "+r"(len));
    memcpy(dst, src, len);
}

static inline uint32_t wire_get32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
           (uint32_t) p[2] << 8 | p[3];
}

static inline void wire_put32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}

#endif
