/*  keys.h: who we are and whom we take (docs/protocol-node.md, section 12).

    Our CURVE key pair lives in the state directory; our id is its public
    key's first 16 bytes in hex. --authorized-keys names the keys we take;
    a ZAP handler on our loop asks about every connection to our ROUTER and
    names it by its key. A static peer given without a key is asked for it
    over UDP (KEY), and what it answers is kept in known-peers, as ssh
    keeps known_hosts; we answer such questions too. */
#ifndef IPCNET_KEYS_H
#define IPCNET_KEYS_H

#include "loop.h"
#include "node.h"
#include "proto.h"

#include <czmq.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct keys keys_t;

/* Loads (or makes and keeps) our key pair, reads --authorized-keys and
   starts the ZAP handler. Logs why and returns NULL on failure. */
keys_t *keys_new(loop_t *loop, const node_config_t *config);

/* Hands the state directory and its files to the user the node is about
   to become (config->drop). */
void keys_hand_over(keys_t *self);

/* Stops answering and frees; safe on NULL. */
void keys_destroy(keys_t **self_p);

/* Answers KEY questions on UDP at port, on the address the ROUTER binds.
   Says why (and goes on) when it cannot. */
void keys_answer(keys_t *self, int port);

/* Our id (32 hex digits), public key (32 bytes, and 40 of Z85), key pair. */
const char *keys_id(const keys_t *self);
const uint8_t *keys_key(const keys_t *self);
const char *keys_public_txt(const keys_t *self);
zcert_t *keys_cert(const keys_t *self);

/* Are only authorized keys taken? */
int keys_closed(const keys_t *self);

/* May we take (dial, or be dialled by) the node of this key? Our own is
   always taken. */
int keys_allowed(keys_t *self, const uint8_t key[PROTO_KEY_LEN]);

/* Asked by the ZAP handler about each connection to our ROUTER whose key
   is authorized: is there room for it? 0 turns it away (ZAP 300). */
typedef int (keys_gate_fn) (void *arg, const uint8_t key[PROTO_KEY_LEN]);
void keys_set_gate(keys_t *self, keys_gate_fn *fn, void *arg);

/* Says (once in a while) that key, met at where, is not authorized. */
void keys_refused_log(keys_t *self, const uint8_t key[PROTO_KEY_LEN], const char *where);

/* Trust on first use: is key the one known-peers keeps for endpoint? If
   it keeps none, key is kept now. Returns 0, or -1 if another key is
   kept (said at most once a minute per *last_log; why says which line,
   in size bytes). */
int keys_known(keys_t *self, const char *endpoint, const uint8_t key[PROTO_KEY_LEN],
               int64_t *last_log, char *why, size_t size);

/* Our public key as 40 characters of Z85, made in state_dir if it has
   none (for --key). Logs why and returns -1 on failure. */
int keys_public(const char *state_dir, char txt[41]);

/* Reads "tcp://HOST:PORT[#KEY]" (KEY: 40 Z85 or 64 hex digits) into the
   endpoint and, if given, the key. Returns 0 or -EINVAL. */
int keys_parse_peer(const char *spec, char *endpoint, size_t size, uint8_t *key, int *has_key);

/* --- asking a static peer for its key ----------------------------------------- */

typedef struct {
    int fd;                     /* UDP socket, or -1 */
    uint64_t nonce;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    int64_t asked;              /* loop time of the last question */
    unsigned tries;
} keyask_t;

/* A keyask_t with no socket. */
void keyask_init(keyask_t *self);

/* Resolves the endpoint's host (on our thread: give addresses, or keys,
   where DNS may be slow), opens a socket whose answers go to fn with arg,
   and asks. Returns 0 even when it could not (the caller asks again
   later), -EINVAL for an endpoint that is not tcp://HOST:PORT. */
int keyask_start(keyask_t *self, loop_t *loop, const char *endpoint, int quiet,
                 loop_fd_fn *fn, void *arg);

/* Asks again. */
void keyask_again(keyask_t *self, loop_t *loop);

/* Reads what the socket holds: 1 with key set when the answer to our
   question came, else 0. */
int keyask_read(keyask_t *self, uint8_t key[PROTO_KEY_LEN]);

/* Closes the socket; safe when none. */
void keyask_stop(keyask_t *self, loop_t *loop);

#endif
