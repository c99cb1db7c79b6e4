/*  keys.c: our key pair, the keys we take (--authorized-keys and ZAP),
    known-peers, KEY questions and answers over UDP, and --peer parsing. */

#include "keys.h"
#include "buf.h"
#include "log.h"
#include "path.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZAP_ENDPOINT    "inproc://zeromq.zap.01"
#define ENDPOINT_MAX    128

struct keys {
    loop_t *loop;
    const node_config_t *cfg;
    zcert_t *cert;              /* our key pair */
    uint8_t key[PROTO_KEY_LEN];
    char id[PROTO_ID_LEN + 1];
    int closed;                 /* --authorized-keys given: only those keys */
    ring_t authorized;          /* their keys (pubkey_t), as last read */
    struct timespec dir_mtime;  /* of the directory, when last read */
    int64_t checked, scanned;   /* loop times of the last look and read */
    void *zap;                  /* our ZAP handler (a libzmq socket) */
    int zap_fd;
    int udp_fd;                 /* answers KEY questions */
    proto_buf_t out;            /* the answers */
    int64_t last_unauth_log;
    keys_gate_fn *gate;
    void *gate_arg;
};

#define KEYFILE_MAX (64 * 1024)

/* Calls fn for each key of field in text: `field = "<40 characters of
   Z85>"` (the zcert format) or, for a public key, a line that is just a
   key (as `ipc-node --key` prints it, 40 characters of Z85, or 64 hex
   digits), then blanks and perhaps a `#` comment. Returns how many. */
static size_t s_each_key(const char *text, const char *field,
                         void (*fn) (const uint8_t key[PROTO_KEY_LEN], void *arg), void *arg)
{
    size_t flen = strlen(field), found = 0;
    int bare = strcmp(field, "public-key") == 0;
    for (const char *line = text; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL) {
        const char *p = line + strspn(line, " \t");
        uint8_t key[PROTO_KEY_LEN];
        char buf[41];
        if (*p == '\n' || *p == '\r' || !*p)
            continue;
        if (strncmp(p, field, flen) == 0) {
            const char *q = p + flen;
            q += strspn(q, " \t");
            if (*q++ != '=')
                continue;
            q += strspn(q, " \t");
            if (*q != '"' || strlen(q) < 42 || q[41] != '"')
                continue;
            memcpy(buf, q + 1, 40);
            buf[40] = 0;
            if (zmq_z85_decode(key, buf)) {
                fn(key, arg);
                found++;
            }
            continue;
        }
        /* A bare key is the line's first word: Z85 has '#' among its
           digits, so a comment starts after a blank ("# ..." is one). */
        size_t word = strcspn(p, " \t\r\n");
        const char *rest = p + word;
        rest += strspn(rest, " \t");
        if (!bare || (*rest && *rest != '\r' && *rest != '\n' && *rest != '#'))
            continue;
        int ok = 0;
        if (word == 40) {
            memcpy(buf, p, 40);
            buf[40] = 0;
            ok = zmq_z85_decode(key, buf) != NULL;
        } else if (word == 64)
            ok = proto_unhex(p, PROTO_KEY_LEN, key) == 0;
        if (ok) {
            fn(key, arg);
            found++;
        }
    }
    return found;
}

static void s_take_key(const uint8_t key[PROTO_KEY_LEN], void *arg)
{
    memcpy(arg, key, PROTO_KEY_LEN);
}

/* The (last) key of field in text. Returns 0, or -1 if there is none. */
static int s_find_key(const char *text, const char *field, uint8_t key[PROTO_KEY_LEN])
{
    return s_each_key(text, field, s_take_key, key) > 0 ? 0 : -1;
}

/* Reads a key file, as ssh reads its keys: not through a link, a regular
   file of at most 64 KiB owned by us (or root, or also_uid), and, holding
   a secret key, readable by its owner alone. Nothing of its content is
   ever logged. Returns 0 with the key of field, -ENOENT if there is no
   such file, or -1 after saying why. */
static int s_read_key(const char *path, const char *field, int secret, uid_t also_uid,
                      uint8_t key[PROTO_KEY_LEN])
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT)
        return -ENOENT;
    if (fd < 0) {
        log_error("cannot read %s: %s", path,
                  errno == ELOOP ? "it is a symbolic link (not following it)" : strerror(errno));
        return -1;
    }
    struct stat st;
    const char *bad = NULL;
    char mode[64];
    if (fstat(fd, &st) < 0)
        bad = strerror(errno);
    else if (!S_ISREG(st.st_mode))
        bad = "it is not a regular file";
    else if (st.st_uid != geteuid() && st.st_uid != 0 && st.st_uid != also_uid)
        bad = "it belongs to another user";
    else if (secret && (st.st_mode & 077)) {
        snprintf(mode, sizeof mode, "its mode %04o lets others read it: chmod 600 it",
                 (unsigned) (st.st_mode & 07777));
        bad = mode;
    } else if (st.st_size > KEYFILE_MAX)
        bad = "it is larger than a key file";
    size_t len = 0;
    char *text = bad ? NULL : path_read(fd, (size_t) st.st_size, &len);
    close(fd);
    if (!bad && !text)
        bad = "out of memory";
    if (text) {
        if (s_find_key(text, field, key) < 0)
            bad = secret ? "it holds no secret-key line of a CURVE key pair"
                         : "it holds no public key";
        memset(text, 0, len);
        free(text);
    }
    if (bad) {
        log_error("not using %s: %s", path, bad);
        return -1;
    }
    return 0;
}

/* Loads the key pair kept in state_dir (node.key, node.key_secret), or
   makes one and keeps it, so a restarted node is the same node (its id is
   its key's). Logs why and returns NULL on failure. */
static zcert_t *s_cert_load(const char *state_dir, uid_t also_uid)
{
    char path[600], secret[620], why[512];
    if (path_own_dir(state_dir, 0700, also_uid, why, sizeof why) < 0) {
        log_error("state directory: %s", why);
        return NULL;
    }
    snprintf(path, sizeof path, "%s/node.key", state_dir);
    snprintf(secret, sizeof secret, "%s/node.key_secret", state_dir);
    uint8_t pub[PROTO_KEY_LEN], sec[PROTO_KEY_LEN], derived[PROTO_KEY_LEN];
    int rp = s_read_key(path, "public-key", 0, also_uid, pub);
    int rs = s_read_key(secret, "secret-key", 1, also_uid, sec);
    if (rp == 0 && rs == 0) {
        /* The public key must be the secret key's: a mismatched pair fails
           every handshake, far from its cause. */
        char stxt[41], ptxt[41], dtxt[41];
        zmq_z85_encode(stxt, sec, PROTO_KEY_LEN);
        zmq_z85_encode(ptxt, pub, PROTO_KEY_LEN);
        int ok = zmq_curve_public(dtxt, stxt) == 0 && strcmp(dtxt, ptxt) == 0 &&
                 zmq_z85_decode(derived, dtxt);
        memset(stxt, 0, sizeof stxt);
        zcert_t *cert = ok ? zcert_new_from(pub, sec) : NULL;
        memset(sec, 0, sizeof sec);
        if (!cert)
            log_error("%s and %s do not hold a key pair; move them away to make a new one",
                      path, secret);
        return cert;
    }
    if (rp != -ENOENT || rs != -ENOENT) {
        if (rp == -ENOENT || rs == -ENOENT)
            log_error("%s or %s is missing; move the other away to make a new key pair",
                      path, secret);
        return NULL;
    }
    zcert_t *cert = zcert_new();
    if (!cert) {
        log_error("cannot make a key pair: %s", zmq_strerror(zmq_errno()));
        return NULL;
    }
    zcert_set_meta(cert, "made-by", "ipc-node");
    mode_t old = umask(077);
    int rc = zcert_save(cert, path);
    umask(old);
    if (rc < 0 || chmod(path, 0644) < 0) {
        log_error("cannot write %s: %s", path, strerror(errno));
        zcert_destroy(&cert);
        return NULL;
    }
    log_notice("made a new key pair in %s", path);
    return cert;
}

int keys_public(const char *state_dir, char txt[41])
{
    zcert_t *cert = s_cert_load(state_dir, (uid_t) -1);
    if (!cert)
        return -1;
    snprintf(txt, 41, "%s", zcert_public_txt(cert));
    zcert_destroy(&cert);
    return 0;
}

const char *keys_id(const keys_t *self) { return self->id; }
const uint8_t *keys_key(const keys_t *self) { return self->key; }
const char *keys_public_txt(const keys_t *self) { return zcert_public_txt(self->cert); }
zcert_t *keys_cert(const keys_t *self) { return self->cert; }
int keys_closed(const keys_t *self) { return self->closed; }

typedef struct {
    uint8_t bytes[PROTO_KEY_LEN];
} pubkey_t;

static void s_add_authorized(const uint8_t key[PROTO_KEY_LEN], void *arg)
{
    pubkey_t *slot = ring_push(arg, sizeof *slot, 16);
    if (slot)
        memcpy(slot->bytes, key, PROTO_KEY_LEN);
}

/* Reads every file of the --authorized-keys directory: zcert public
   files (such as another node's node.key), or files of keys as
   `ipc-node --key` prints them, with # comments. */
static int s_read_authorized(keys_t *self)
{
    const char *dir = self->cfg->authorized_keys;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        log_error("cannot read --authorized-keys %s: %s", dir, strerror(errno));
        if (dfd >= 0)
            close(dfd);
        return -1;
    }
    struct stat st;
    if (fstat(dfd, &st) == 0)
        self->dir_mtime = st.st_mtim;
    ring_t keys = { 0 };
    size_t files = 0;
    for (struct dirent *e; (e = readdir(d)) && files < 4096;) {
        if (e->d_name[0] == '.')
            continue;
        int fd = openat(dfd, e->d_name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            continue;
        char *text = NULL;
        size_t len;
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= KEYFILE_MAX &&
            (text = path_read(fd, (size_t) st.st_size, &len))) {
            s_each_key(text, "public-key", s_add_authorized, &keys);
            free(text);
            files++;
        }
        close(fd);
    }
    closedir(d);
    ring_free(&self->authorized);
    self->authorized = keys;
    self->scanned = loop_now(self->loop);
    return 0;
}

/* Read again when the directory changed (a file added, removed or
   renamed), looked at most twice a second, and every five seconds in any
   case (a file edited in place). */
static void s_refresh_authorized(keys_t *self)
{
    int64_t now = loop_now(self->loop);
    if (now - self->checked < 500)
        return;
    self->checked = now;
    struct stat st;
    if (stat(self->cfg->authorized_keys, &st) < 0)
        return;
    if (st.st_mtim.tv_sec != self->dir_mtime.tv_sec ||
        st.st_mtim.tv_nsec != self->dir_mtime.tv_nsec || now - self->scanned >= 5000)
        s_read_authorized(self);
}

int keys_allowed(keys_t *self, const uint8_t key[PROTO_KEY_LEN])
{
    if (!self->closed || memcmp(key, self->key, PROTO_KEY_LEN) == 0)
        return 1;
    s_refresh_authorized(self);
    for (size_t i = 0; i < self->authorized.count; i++)
        if (memcmp(RING_AT(&self->authorized, pubkey_t, i).bytes, key, PROTO_KEY_LEN) == 0)
            return 1;
    return 0;
}

void keys_refused_log(keys_t *self, const uint8_t key[PROTO_KEY_LEN], const char *where)
{
    int64_t now = loop_now(self->loop);
    if (now - self->last_unauth_log < 10000)
        return;
    self->last_unauth_log = now;
    char txt[41];
    zmq_z85_encode(txt, key, PROTO_KEY_LEN);
    log_notice("key %s (%s) is not in %s: refusing it", txt, where, self->cfg->authorized_keys);
}

int keys_known(keys_t *self, const char *endpoint, const uint8_t key[PROTO_KEY_LEN],
               int64_t *last_log, char *why, size_t size)
{
    char path[600], line[300], txt[41];
    zmq_z85_encode(txt, key, PROTO_KEY_LEN);
    snprintf(path, sizeof path, "%s/known-peers", self->cfg->state_dir);
    size_t eplen = strlen(endpoint);
    int lineno = 0, rc = 1;
    FILE *f = fopen(path, "r");
    while (f && rc == 1 && fgets(line, sizeof line, f)) {
        lineno++;
        if (strncmp(line, endpoint, eplen) != 0 || line[eplen] != ' ')
            continue;
        char *known = line + eplen + 1;
        known[strcspn(known, "\r\n")] = 0;
        rc = strcmp(known, txt) == 0 ? 0 : -1;
    }
    if (f)
        fclose(f);
    if (rc == 0)
        return 0;
    if (rc < 0) {
        snprintf(why, size, "key mismatch: it answers with %s, not the key %s:%d keeps",
                 txt, path, lineno);
        int64_t now = loop_now(self->loop);
        if (now - *last_log > 60000) {
            log_error("%s now answers with key %s, not the one %s:%d keeps: refusing it "
                      "(if the change is expected, delete that line or pin the key)",
                      endpoint, txt, path, lineno);
            *last_log = now;
        }
        return -1;
    }
    f = fopen(path, "a");
    if (!f || fprintf(f, "%s %s\n", endpoint, txt) < 0 || fclose(f) != 0)
        log_warning("cannot keep the key of %s in %s: %s", endpoint, path, strerror(errno));
    log_notice("learned the key of %s on first use: %s, kept in %s (pin it: --peer '%s#%s')",
               endpoint, txt, path, endpoint, txt);
    return 0;
}

void keys_set_gate(keys_t *self, keys_gate_fn *fn, void *arg)
{
    self->gate = fn;
    self->gate_arg = arg;
}

/* --- ZAP (ZeroMQ RFC 27) ------------------------------------------------------- */

/* Every connection to our ROUTER is asked about here. We take the keys
   authorized, and name the connection by its key in hex (its User-Id),
   which every ROUTER message is checked against. */
static void s_zap_drain(keys_t *self)
{
    void *zap = self->zap;
    for (int n = 0; n < 256; n++) {
        /* version, request id, domain, address, routing id, mechanism, key;
           a request of more parts is read whole and refused. */
        zmq_msg_t part[8];
        int nparts = 0, more = 1;
        while (more && nparts < 8) {
            zmq_msg_init(&part[nparts]);
            if (zmq_msg_recv(&part[nparts], zap, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&part[nparts]);
                break;
            }
            more = zmq_msg_more(&part[nparts++]);
        }
        if (nparts == 0)
            return;
        for (zmq_msg_t extra; more; zmq_msg_close(&extra)) {
            zmq_msg_init(&extra);
            more = zmq_msg_recv(&extra, zap, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&extra);
        }
        const char *status = "400", *text = "malformed request";
        char uid[2 * PROTO_KEY_LEN + 1] = "";
        if (nparts == 7 && zmq_msg_size(&part[0]) == 3 && memcmp(zmq_msg_data(&part[0]), "1.0", 3) == 0 &&
            zmq_msg_size(&part[5]) == 5 && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
            zmq_msg_size(&part[6]) == PROTO_KEY_LEN) {
            const uint8_t *key = zmq_msg_data(&part[6]);
            if (keys_allowed(self, key) && self->gate && !self->gate(self->gate_arg, key)) {
                status = "300";     /* the handshake fails; it may try later */
                text = "busy: no room for another connection";
            } else if (keys_allowed(self, key)) {
                proto_hex(key, PROTO_KEY_LEN, uid);
                status = "200";
                text = "OK";
            } else {
                keys_refused_log(self, key, "a node dialling us");
                text = "key not authorized";
            }
        }
        zmq_send(zap, "1.0", 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        if (nparts >= 2)
            zmq_send(zap, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        else
            zmq_send(zap, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, status, 3, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, text, strlen(text), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, uid, strlen(uid), ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(zap, "", 0, ZMQ_DONTWAIT);
        for (int i = 0; i < nparts; i++)
            zmq_msg_close(&part[i]);
    }
}

static void s_zap_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) fd;
    (void) revents;
    s_zap_drain(arg);
}

keys_t *keys_new(loop_t *loop, const node_config_t *config)
{
    keys_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->loop = loop;
    self->cfg = config;
    self->zap_fd = self->udp_fd = -1;
    self->last_unauth_log = INT64_MIN / 2;
    if (!(self->cert = s_cert_load(config->state_dir,
                                   config->drop ? config->run_uid : (uid_t) -1))) {
        keys_destroy(&self);
        return NULL;
    }
    memcpy(self->key, zcert_public_key(self->cert), PROTO_KEY_LEN);
    proto_key_id(self->key, self->id);
    if (config->authorized_keys[0]) {
        struct stat st;
        if (stat(config->authorized_keys, &st) < 0 || !S_ISDIR(st.st_mode)) {
            log_error("--authorized-keys %s: not a directory", config->authorized_keys);
            keys_destroy(&self);
            return NULL;
        }
        self->closed = 1;
        if (s_read_authorized(self) < 0) {
            keys_destroy(&self);
            return NULL;
        }
    }
    /* The ZAP handler before the ROUTER: ZeroMQ asks it about every
       connection as soon as the ROUTER listens. */
    self->zap = zsys_socket(ZMQ_REP, __FILE__, __LINE__);
    size_t fdlen = sizeof self->zap_fd;
    if (!self->zap || zmq_bind(self->zap, ZAP_ENDPOINT) < 0 ||
        zmq_getsockopt(self->zap, ZMQ_FD, &self->zap_fd, &fdlen) < 0) {
        log_error("cannot start the ZAP handler: %s", zmq_strerror(zmq_errno()));
        self->zap_fd = -1;
        keys_destroy(&self);
        return NULL;
    }
    loop_fd_add(loop, self->zap_fd, LOOP_IN, s_zap_ready, self);
    return self;
}

void keys_hand_over(keys_t *self)
{
    const node_config_t *cfg = self->cfg;
    if (!cfg->drop)
        return;
    /* known-peers is written as the node learns keys: the state directory
       and what is in it become the user's the node runs as. */
    static const char *const files[] = { "", "/node.key", "/node.key_secret", "/known-peers" };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[600];
        snprintf(path, sizeof path, "%s%s", cfg->state_dir, files[i]);
        if (lchown(path, cfg->run_uid, cfg->run_gid) < 0 && errno != ENOENT)
            log_warning("cannot hand %s over to uid %u: %s, ignoring", path,
                        (unsigned) cfg->run_uid, strerror(errno));
    }
}

void keys_destroy(keys_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    keys_t *self = *self_p;
    if (self->zap_fd >= 0)
        loop_fd_del(self->loop, self->zap_fd);
    if (self->zap)
        zsys_close(self->zap, __FILE__, __LINE__);
    if (self->udp_fd >= 0) {
        loop_fd_del(self->loop, self->udp_fd);
        close(self->udp_fd);
    }
    ring_free(&self->authorized);
    zcert_destroy(&self->cert);
    proto_free(&self->out);
    free(self);
    *self_p = NULL;
}

/* --- KEY over UDP ------------------------------------------------------------------ */

static const uint8_t s_zero[PROTO_KEY_LEN];

/* KEY questions to us: answered with our key, the same size. */
static void s_udp_ready(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) revents;
    keys_t *self = arg;
    for (int i = 0; i < 64; i++) {
        uint8_t buf[PROTO_KEY_MSG + 1];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        ssize_t n = recvfrom(fd, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr *) &from,
                             &fromlen);
        if (n < 0)
            return;
        proto_msg_t m;
        if (n != PROTO_KEY_MSG || proto_decode(buf, (size_t) n, &m) < 0 || m.type != P_KEY ||
            memcmp(m.key, s_zero, PROTO_KEY_LEN) != 0)
            continue;   /* not a question */
        proto_encode(&self->out, &(proto_msg_t) { .type = P_KEY, .stamp = m.stamp, .key = self->key });
        if (!self->out.failed)
            (void) sendto(fd, self->out.data, self->out.len, MSG_DONTWAIT,
                          (struct sockaddr *) &from, fromlen);
    }
}

void keys_answer(keys_t *self, int port_number)
{
    char host[64], port[16];
    const char *addr = self->cfg->bind;
    size_t len = strlen(addr);
    if (addr[0] == '[' && len >= 2 && addr[len - 1] == ']')
        snprintf(host, sizeof host, "%.*s", (int) len - 2, addr + 1);
    else
        snprintf(host, sizeof host, "%s", addr);
    snprintf(port, sizeof port, "%d", port_number);
    int any = strcmp(host, "*") == 0;
    if (any) {
        /* Both families on one socket, as the ROUTER; IPv4 alone where
           the kernel has no IPv6. */
        int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), off = 0;
        struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_ANY_INIT,
                                   .sin6_port = htons((uint16_t) port_number) };
        if (fd >= 0 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof off) == 0 &&
            bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0) {
            self->udp_fd = fd;
            loop_fd_add(self->loop, fd, LOOP_IN, s_udp_ready, self);
            return;
        }
        if (fd >= 0)
            close(fd);
    }
    struct addrinfo hints = {
        .ai_socktype = SOCK_DGRAM, .ai_family = any ? AF_INET : AF_UNSPEC,
        .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV,
    }, *ai;
    int rc = getaddrinfo(any ? NULL : host, port, &hints, &ai);
    if (rc != 0) {
        log_warning("not answering KEY questions: cannot use %s: %s", host, gai_strerror(rc));
        return;
    }
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        log_warning("not answering KEY questions: cannot bind UDP port %s: %s "
                    "(peers must then be given our key)", port, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return;
    }
    freeaddrinfo(ai);
    self->udp_fd = fd;
    loop_fd_add(self->loop, fd, LOOP_IN, s_udp_ready, self);
}

/* Splits "tcp://HOST:PORT" (HOST may be "[v6]") into host and port. */
static int s_split(const char *endpoint, char *host, size_t hsize, char *port, size_t psize)
{
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return -EINVAL;
    const char *h = endpoint + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h || strlen(colon + 1) == 0 || strlen(colon + 1) >= psize)
        return -EINVAL;
    size_t hlen = (size_t) (colon - h);
    if (h[0] == '[' && hlen >= 2 && h[hlen - 1] == ']') {
        h++;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hsize)
        return -EINVAL;
    memcpy(host, h, hlen);
    host[hlen] = 0;
    strcpy(port, colon + 1);
    return 0;
}

int keys_parse_peer(const char *spec, char *endpoint, size_t size, uint8_t *key, int *has_key)
{
    const char *hash = strchr(spec, '#');
    size_t eplen = hash ? (size_t) (hash - spec) : strlen(spec);
    char host[ENDPOINT_MAX], port[16];
    if (eplen >= size || eplen >= ENDPOINT_MAX)
        return -EINVAL;
    memcpy(endpoint, spec, eplen);
    endpoint[eplen] = 0;
    char *end;
    if (s_split(endpoint, host, sizeof host, port, sizeof port) < 0 ||
        strtoul(port, &end, 10) - 1 >= 65535 || *end || port[0] < '0' || port[0] > '9')
        return -EINVAL;
    *has_key = hash != NULL;
    if (!hash)
        return 0;
    const char *k = hash + 1;
    size_t klen = strlen(k);
    if (klen == 40)
        return zmq_z85_decode(key, k) ? 0 : -EINVAL;
    return klen == 2 * PROTO_KEY_LEN ? proto_unhex(k, PROTO_KEY_LEN, key) : -EINVAL;
}

void keyask_init(keyask_t *self)
{
    *self = (keyask_t) { .fd = -1 };
}

void keyask_again(keyask_t *self, loop_t *loop)
{
    proto_buf_t b = { 0 };
    proto_encode(&b, &(proto_msg_t) { .type = P_KEY, .stamp = self->nonce });
    if (!b.failed && self->fd >= 0)
        (void) sendto(self->fd, b.data, b.len, MSG_DONTWAIT, (struct sockaddr *) &self->addr,
                      self->addrlen);     /* lost: asked again */
    proto_free(&b);
    self->asked = loop_now(loop);
    self->tries++;
}

int keyask_start(keyask_t *self, loop_t *loop, const char *endpoint, int quiet,
                 loop_fd_fn *fn, void *arg)
{
    char host[ENDPOINT_MAX], port[16];
    if (s_split(endpoint, host, sizeof host, port, sizeof port) < 0)
        return -EINVAL;
    self->asked = loop_now(loop);
    struct addrinfo hints = {
        .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICSERV,
        .ai_family = strchr(endpoint, '[') ? AF_INET6 : AF_INET,     /* as the DEALER */
    }, *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0) {
        if (self->tries++ % 30 == 0)
            log_warning("cannot resolve %s: %s; trying again", endpoint, gai_strerror(rc));
        return 0;       /* asked again later */
    }
    if (ai->ai_addrlen <= sizeof self->addr) {
        memcpy(&self->addr, ai->ai_addr, ai->ai_addrlen);
        self->addrlen = ai->ai_addrlen;
        self->fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    freeaddrinfo(ai);
    if (self->fd < 0) {
        log_warning("cannot ask %s for its key: %s", endpoint, strerror(errno));
        return 0;
    }
    if (getrandom(&self->nonce, sizeof self->nonce, 0) != sizeof self->nonce)
        self->nonce = (uint64_t) loop_clock_ms() ^ (uint64_t) (uintptr_t) self;
    loop_fd_add(loop, self->fd, LOOP_IN, fn, arg);
    if (self->tries == 0 && !quiet)
        log_info("asking %s for its key (no key given for it)", endpoint);
    keyask_again(self, loop);
    return 0;
}

int keyask_read(keyask_t *self, uint8_t key[PROTO_KEY_LEN])
{
    for (int i = 0; i < 16 && self->fd >= 0; i++) {
        uint8_t buf[PROTO_KEY_MSG + 1];
        ssize_t n = recv(self->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0)
            return 0;
        proto_msg_t m;
        if (n != PROTO_KEY_MSG || proto_decode(buf, (size_t) n, &m) < 0 || m.type != P_KEY ||
            m.stamp != self->nonce || memcmp(m.key, s_zero, PROTO_KEY_LEN) == 0)
            continue;   /* not the answer to our question */
        memcpy(key, m.key, PROTO_KEY_LEN);
        return 1;
    }
    return 0;
}

void keyask_stop(keyask_t *self, loop_t *loop)
{
    if (self->fd < 0)
        return;
    loop_fd_del(loop, self->fd);
    close(self->fd);
    self->fd = -1;
}
