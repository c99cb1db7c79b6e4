/*  test_shm.c: large payloads as sealed memfds (issue 14), through real
    sockets and real nodes: what arrives, that it arrives mapped from a
    memfd and not copied, what the node refuses, and that it keeps no fd.

    A payload at or above the node's --shm-threshold, sent with the
    ordinary calls, travels as a sealed memfd passed with SCM_RIGHTS; the
    receiver's msg.data is a read-only mapping of it. A client that passes
    an fd of the wrong kind gets ERROR -EBADMSG for that frame and nothing
    else happens; one that passes an fd with no frame for it is cut off.

    Run one test: tests/node/test_shm 'test_shm_bad*'
*/

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define WAIT_MS     5000
#define QUIET_MS    300
#define BIG         (1024 * 1024)

static const char *const s_names[] = { "alpha", "beta" };

typedef struct {
    node_t n[2];
    ipcnet_t *q[2];
} fx_t;

static int setup(void **state)
{
    return harness_state_new(state, sizeof (fx_t));
}

static int teardown(void **state)
{
    fx_t *f = *state;
    int rc = harness_teardown_nodes(f->n, f->q, s_names, 2);
    harness_watchdog(NULL, 0);
    free(f);
    return rc;
}

#define WATCH(secs) harness_watchdog(__func__, (secs))

/* alpha, with a threshold of 64 KiB (the default is 1 MiB), then extra
   (a later option wins). */
static void s_start(fx_t *f, char *const extra[])
{
    char *argv[16] = { "--shm-threshold", "64K" };
    int n = 2;
    for (int i = 0; extra[i] && n < 15; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    if (harness_start_named(&f->n[0], "alpha", argv) < 0)
        fail_msg("cannot start alpha");
}

/* Does p point into a mapping of a memfd in this process? */
static int s_is_memfd(const void *p)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, maps)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t) p >= lo && (uintptr_t) p < hi)
            found = strstr(line, "/memfd:") ? 1 : -1;
    }
    fclose(maps);
    return found == 1;
}

/* How many fds the process pid has open. */
static int s_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int) pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* Until node pid has at most want fds open (bounded); its count. */
static int s_fds_settle(pid_t pid, int want)
{
    int64_t t0 = harness_now_ms();
    int n;
    while ((n = s_fds(pid)) > want && harness_now_ms() - t0 < WAIT_MS)
        usleep(20 * 1000);
    return n;
}

/* A counter of the node's stats listing, through q (a client of it). */
static long long s_stat(ipcnet_t *q, const char *key)
{
    char *text = NULL;
    assert_int_equal(ipcnet_query(q, IPCNET_Q_STATS, &text), 0);
    long long v = -1;
    size_t kl = strlen(key);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, key, kl) && line[kl] == '\t')
            v = atoll(line + kl + 1);
    free(text);
    return v;
}

static uint8_t *s_pattern(size_t size, unsigned seed)
{
    uint8_t *p = malloc(size);
    assert_non_null(p);
    for (size_t i = 0; i < size; i++)
        p[i] = (uint8_t) (i * 31 + seed + (i >> 12));
    return p;
}

/* Receives one message of the kind and checks its bytes and whether it
   came as a mapping of a memfd. */
static void s_expect_payload(ipcnet_t *c, ipcnet_kind_t kind, const uint8_t *want,
                             size_t size, int mapped)
{
    ipcnet_msg_t m;
    harness_expect(c, kind, &m);
    assert_int_equal(m.size, size);
    assert_memory_equal(m.data, want, size);
    assert_int_equal(s_is_memfd(m.data), mapped);
}

/* --- the transparent path ---------------------------------------------------- */

/* 1 MiB with ipcnet_send() arrives whole, mapped from a memfd; 1000
   bytes arrive inline as before. */
static void test_shm_send_local(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    uint8_t *big = s_pattern(BIG, 1);
    assert_int_equal(ipcnet_send(s, "shm.sink", big, BIG, 0), 0);
    assert_int_equal(ipcnet_send(s, "shm.sink", big, 1000, 0), 0);
    assert_int_equal(ipcnet_send(s, "shm.sink", big + 1, 64 * 1024, IPCNET_CONFIRM), 0);
    s_expect_payload(r, IPCNET_MSG_SEND, big, BIG, 1);
    s_expect_payload(r, IPCNET_MSG_SEND, big, 1000, 0);
    s_expect_payload(r, IPCNET_MSG_SEND, big + 1, 64 * 1024, 1);
    harness_expect_nothing(r);
    assert_int_equal(s_stat(s, "shm_threshold"), 65536);
    assert_int_equal(s_stat(s, "shm_taken"), 2);
    assert_int_equal(s_stat(s, "shm_passed"), 2);
    assert_int_equal(s_stat(s, "shm_refused"), 0);
    free(big);
}

/* --shm-threshold 0: the node takes no memfds and says so; the same
   calls copy through the socket as before. */
static void test_shm_threshold_zero_copies(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { "--shm-threshold", "0", NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    uint8_t *big = s_pattern(BIG, 2);
    assert_int_equal(ipcnet_send(s, "shm.sink", big, BIG, 0), 0);
    s_expect_payload(r, IPCNET_MSG_SEND, big, BIG, 0);
    free(big);
}

/* A request and its reply, both large, both as memfds; the reply is
   valid until the next call. */
static void test_shm_request_reply(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "server", "shm.echo");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "client");
    uint8_t *q = s_pattern(256 * 1024, 3), *a = s_pattern(300 * 1024, 4);
    uint32_t id;
    assert_int_equal(ipcnet_request_async(s, "shm.echo", q, 256 * 1024, 5000, &id), 0);
    ipcnet_msg_t m;
    harness_expect(r, IPCNET_MSG_REQUEST, &m);
    assert_int_equal(m.size, 256 * 1024);
    assert_memory_equal(m.data, q, m.size);
    assert_true(s_is_memfd(m.data));
    assert_int_equal(ipcnet_reply(r, &m, a, 300 * 1024), 0);
    harness_expect(s, IPCNET_MSG_REPLY, &m);
    assert_int_equal(m.id, id);
    assert_int_equal(m.size, 300 * 1024);
    assert_memory_equal(m.data, a, m.size);
    assert_true(s_is_memfd(m.data));
    /* The blocking call too. */
    pid_t pid = harness_fork();
    if (pid == 0) {
        ipcnet_msg_t rq;
        int ok = ipcnet_recv(r, &rq, WAIT_MS) == 0 && rq.kind == IPCNET_MSG_REQUEST &&
                 ipcnet_reply(r, &rq, a, 300 * 1024) == 0;
        _exit(ok ? 0 : 1);
    }
    assert_int_equal(ipcnet_request(s, "shm.echo", q, 256 * 1024, 5000, &m), 0);
    assert_int_equal(m.size, 300 * 1024);
    assert_memory_equal(m.data, a, m.size);
    assert_true(s_is_memfd(m.data));
    assert_int_equal(harness_reap(pid, WAIT_MS), 0);
    free(q);
    free(a);
}

/* A publication to three subscribers: each gets it, from the same region. */
static void test_shm_publish_many(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *sub[3];
    for (int i = 0; i < 3; i++) {
        sub[i] = harness_client(&f->n[0], "alpha", "subscriber");
        assert_int_equal(ipcnet_subscribe(sub[i], "shm.*"), 0);
    }
    ipcnet_t *p = harness_client(&f->n[0], "alpha", "publisher");
    uint8_t *big = s_pattern(BIG, 5);
    assert_int_equal(ipcnet_publish(p, "shm.topic", big, BIG, IPCNET_CONFIRM), 0);
    for (int i = 0; i < 3; i++)
        s_expect_payload(sub[i], IPCNET_MSG_PUBLISH, big, BIG, 1);
    free(big);
}

/* --- the zero-copy calls ----------------------------------------------------------- */

/* The inode of the memfd mapped at p in this process, or 0. */
static unsigned long s_inode_at(const void *p)
{
    FILE *maps = fopen("/proc/self/maps", "r");
    assert_non_null(maps);
    char line[512];
    unsigned long ino = 0;
    while (fgets(line, sizeof line, maps)) {
        unsigned long lo, hi, inode;
        if (sscanf(line, "%lx-%lx %*s %*s %*s %lu", &lo, &hi, &inode) == 3 &&
            (uintptr_t) p >= lo && (uintptr_t) p < hi) {
            ino = inode;
            break;
        }
    }
    fclose(maps);
    return ino;
}

/* A region filled in place is sent without a copy: the receiver maps the
   very memfd the sender filled. Kept past the next call, it is handed on
   to a subscriber, again the same region. */
static void test_shm_zero_copy(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    ipcnet_t *sub = harness_client(&f->n[0], "alpha", "subscriber");
    assert_int_equal(ipcnet_subscribe(sub, "shm.*"), 0);
    uint8_t *pat = s_pattern(BIG, 10);

    ipcnet_buf_t b;
    assert_int_equal(ipcnet_buf_alloc(s, BIG, &b), 0);
    assert_int_equal(b.size, BIG);
    memcpy(b.data, pat, BIG);
    struct stat st;
    assert_int_equal(fstat(b.fd, &st), 0);
    unsigned long ino = (unsigned long) st.st_ino;
    assert_int_equal(ipcnet_buf_send(s, "shm.sink", &b, IPCNET_CONFIRM), 0);
    assert_null(b.data);
    assert_int_equal(b.fd, -1);

    ipcnet_msg_t m;
    harness_expect(r, IPCNET_MSG_SEND, &m);
    assert_int_equal(m.size, BIG);
    assert_memory_equal(m.data, pat, BIG);
    assert_int_equal(s_inode_at(m.data), ino);      /* the sender's region itself */
    ipcnet_buf_t kept;
    assert_int_equal(ipcnet_msg_keep(r, &m, &kept), 0);
    assert_true(kept.readonly);
    /* The next call does not end it. */
    assert_int_equal(ipcnet_send(s, "shm.sink", "x", 1, 0), 0);
    harness_expect_text(r, IPCNET_MSG_SEND, NULL, "x");
    assert_memory_equal(kept.data, pat, BIG);
    assert_int_equal(ipcnet_buf_publish(r, "shm.t", &kept, IPCNET_CONFIRM), 0);
    harness_expect(sub, IPCNET_MSG_PUBLISH, &m);
    assert_int_equal(m.size, BIG);
    assert_memory_equal(m.data, pat, BIG);
    assert_int_equal(s_inode_at(m.data), ino);

    /* A message that came inline is kept as a copy in a region. */
    assert_int_equal(ipcnet_send(s, "shm.sink", "inline", 6, 0), 0);
    harness_expect(r, IPCNET_MSG_SEND, &m);
    assert_int_equal(ipcnet_msg_keep(r, &m, &kept), 0);
    assert_memory_equal(kept.data, "inline", 6);
    ipcnet_buf_release(&kept);
    assert_int_equal(kept.fd, -1);

    /* Nobody holds the name: the error, and the buffer is given up. */
    assert_int_equal(ipcnet_buf_alloc(s, 4096, &b), 0);
    assert_int_equal(ipcnet_buf_send(s, "shm.nobody", &b, IPCNET_CONFIRM), -ENOENT);
    assert_null(b.data);
    assert_int_equal(b.fd, -1);

    /* Too large, and empty. */
    assert_int_equal(ipcnet_buf_alloc(s, ipcnet_max_message(s) + 1, &b), -EMSGSIZE);
    assert_int_equal(ipcnet_buf_alloc(s, 0, &b), -EINVAL);
    free(pat);
}

/* A node that takes no memfds: a buffer goes as bytes. */
static void test_shm_zero_copy_to_a_copying_node(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { "--shm-threshold", "0", NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    uint8_t *pat = s_pattern(300000, 11);
    ipcnet_buf_t b;
    assert_int_equal(ipcnet_buf_alloc(s, 300000, &b), 0);
    memcpy(b.data, pat, 300000);
    assert_int_equal(ipcnet_buf_send(s, "shm.sink", &b, 0), 0);
    s_expect_payload(r, IPCNET_MSG_SEND, pat, 300000, 0);
    free(pat);
}

/* A handle made with IPCNET_RECONNECT sends and receives memfds too, and
   after its node came back, on the new connection. */
static void test_shm_reconnect_handle(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = NULL, *s = harness_client(&f->n[0], "alpha", "sender");
    assert_int_equal(ipcnet_connect(&r, f->n[0].sock, "reconnecting", IPCNET_RECONNECT), 0);
    assert_int_equal(ipcnet_bind(r, "shm.sink"), 0);
    uint8_t *big = s_pattern(BIG, 12);
    assert_int_equal(ipcnet_send(s, "shm.sink", big, BIG, IPCNET_CONFIRM), 0);
    s_expect_payload(r, IPCNET_MSG_SEND, big, BIG, 1);
    assert_int_equal(ipcnet_send(r, ipcnet_address(s), big + 3, BIG - 3, 0), 0);
    s_expect_payload(s, IPCNET_MSG_SEND, big + 3, BIG - 3, 1);

    /* The node dies and comes back: the handle binds again, memfds go on. */
    harness_client_close(&s);
    harness_crash(&f->n[0]);
    assert_int_equal(harness_restart_named(&f->n[0], "alpha",
                                           (char *[]) { "--shm-threshold", "64K", NULL }), 0);
    ipcnet_msg_t m;
    harness_expect(r, IPCNET_MSG_EVENT, &m);
    assert_int_equal(m.event, IPCNET_EV_NODE_DOWN);
    harness_expect(r, IPCNET_MSG_EVENT, &m);
    assert_int_equal(m.event, IPCNET_EV_NODE_UP);
    s = harness_client(&f->n[0], "alpha", "sender again");
    assert_int_equal(ipcnet_send(s, "shm.sink", big + 5, BIG - 5, IPCNET_CONFIRM), 0);
    s_expect_payload(r, IPCNET_MSG_SEND, big + 5, BIG - 5, 1);
    ipcnet_close(&r);
    free(big);
}

/* --- wrong fds, from a raw client -------------------------------------------- */

/* Sends one SEND to dest flagged SHM, saying size bytes, with fd (or none
   if fd < 0) on the same sendmsg. */
static void s_raw_send_fd(int sock, uint32_t seq, const char *dest, uint64_t size, int fd)
{
    uint8_t frame[WIRE_HEAD_MAX + WIRE_SHM_REF];
    size_t hlen = wire_encode(frame, WIRE_SEND, WIRE_F_SHM, seq, 0, dest, strlen(dest),
                              NULL, 0, WIRE_SHM_REF);
    wire_put32(frame + hlen, (uint32_t) (size >> 32));
    wire_put32(frame + hlen + 4, (uint32_t) size);
    union {
        struct cmsghdr h;
        char room[CMSG_SPACE(sizeof (int))];
    } ctl;
    struct iovec iov = { frame, hlen + WIRE_SHM_REF };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        mh.msg_control = &ctl;
        mh.msg_controllen = sizeof ctl;
        ctl.h = (struct cmsghdr) { .cmsg_len = CMSG_LEN(sizeof (int)), .cmsg_level = SOL_SOCKET,
                                   .cmsg_type = SCM_RIGHTS };
        memcpy(CMSG_DATA(&ctl.h), &fd, sizeof fd);
    }
    assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t) iov.iov_len);
}

/* A memfd of size bytes with the given seals. */
static int s_memfd(size_t size, int seals)
{
    int fd = memfd_create("test", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t) size), 0);
    if (seals)
        assert_int_equal(fcntl(fd, F_ADD_SEALS, seals), 0);
    return fd;
}

#define ALL_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* Reads the next frame on a raw connection: an ERROR for seq with err. */
static void s_raw_expect_error(int sock, uint32_t seq, int err)
{
    uint8_t buf[WIRE_HEAD_MAX + 64];
    wire_frame_t fr;
    ssize_t n = harness_raw_read_frame(sock, buf, sizeof buf, WAIT_MS, &fr);
    assert_true(n > 0);
    assert_int_equal(fr.type, WIRE_ERROR);
    assert_int_equal(fr.seq, seq);
    assert_int_equal(fr.aux, err);
    print_message("  seq %u: %.*s\n", seq, (int) fr.s2len, fr.s2);
}

/* A socket, a pipe, an unsealed memfd, one sealed but writable, one
   smaller than it says, a file on disk: each an ERROR EBADMSG for its
   frame; the connection stays, the receiver gets nothing, the node keeps
   no fd; then a good one goes through. */
static void test_shm_bad_fds(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    int base = s_fds(f->n[0].pid);
    int sock = harness_raw_connect(&f->n[0]);
    assert_true(sock >= 0);
    assert_int_equal(harness_raw_hello(sock, "bad"), 0);
    base++;         /* this connection */

    int sp[2], pp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
    char path[160];
    snprintf(path, sizeof path, "%s/file", f->n[0].dir);
    int file = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    assert_true(file >= 0);
    assert_int_equal(ftruncate(file, 4096), 0);
    int bad[] = {
        sp[0], pp[0], s_memfd(4096, 0), s_memfd(4096, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
        s_memfd(1024, ALL_SEALS), file,
    };
    const char *what[] = { "socket", "pipe", "unsealed memfd", "writable memfd",
                           "short memfd", "file on disk" };
    for (uint32_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        print_message("%s:\n", what[i]);
        s_raw_send_fd(sock, 2 + i, "shm.sink", 4096, bad[i]);
        s_raw_expect_error(sock, 2 + i, EBADMSG);
        close(bad[i]);
    }
    close(sp[1]);
    close(pp[1]);
    harness_expect_nothing(r);
    assert_int_equal(s_fds_settle(f->n[0].pid, base), base);

    /* Larger than the node's largest message: EMSGSIZE, still connected. */
    int big = s_memfd(4096, ALL_SEALS);
    s_raw_send_fd(sock, 20, "shm.sink", 1ull << 40, big);
    s_raw_expect_error(sock, 20, EMSGSIZE);
    close(big);

    /* A good one: its bytes arrive, mapped. */
    int good = memfd_create("good", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    uint8_t *pat = s_pattern(100000, 6);
    assert_int_equal(write(good, pat, 100000), 100000);
    assert_int_equal(fcntl(good, F_ADD_SEALS, ALL_SEALS), 0);
    s_raw_send_fd(sock, 30, "shm.sink", 100000, good);
    close(good);
    s_expect_payload(r, IPCNET_MSG_SEND, pat, 100000, 1);
    free(pat);
    assert_int_equal(s_stat(r, "shm_refused"), 7);
    assert_int_equal(s_stat(r, "shm_taken"), 1);
    assert_int_equal(s_fds_settle(f->n[0].pid, base), base);
    close(sock);
}

/* An fd with a frame not flagged SHM, and a frame flagged SHM with no
   fd: protocol violations, the connection is closed, the fd too. The
   first frame is well formed and is delivered (the stray fd is seen once
   it is handled); the second, which has no payload, is not. */
static void test_shm_stray_and_missing_fd(void **state)
{
    WATCH(30);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    int base = s_fds(f->n[0].pid);

    int sock = harness_raw_connect(&f->n[0]);
    assert_true(sock >= 0);
    assert_int_equal(harness_raw_hello(sock, "stray"), 0);
    int fd = s_memfd(4096, ALL_SEALS);
    uint8_t frame[WIRE_HEAD_MAX];
    size_t len = wire_encode(frame, WIRE_SEND, 0, 2, 0, "shm.sink", 8, NULL, 0, 0);
    union {
        struct cmsghdr h;
        char room[CMSG_SPACE(sizeof (int))];
    } ctl;
    struct iovec iov = { frame, len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
                         .msg_controllen = sizeof ctl };
    ctl.h = (struct cmsghdr) { .cmsg_len = CMSG_LEN(sizeof (int)), .cmsg_level = SOL_SOCKET,
                               .cmsg_type = SCM_RIGHTS };
    memcpy(CMSG_DATA(&ctl.h), &fd, sizeof fd);
    assert_int_equal(sendmsg(sock, &mh, MSG_NOSIGNAL), (ssize_t) len);
    close(fd);
    s_raw_expect_error(sock, 0, EBADMSG);
    assert_int_equal(harness_raw_wait_closed(sock, WAIT_MS), 0);
    close(sock);

    sock = harness_raw_connect(&f->n[0]);
    assert_true(sock >= 0);
    assert_int_equal(harness_raw_hello(sock, "missing"), 0);
    s_raw_send_fd(sock, 2, "shm.sink", 4096, -1);
    s_raw_expect_error(sock, 0, EBADMSG);
    assert_int_equal(harness_raw_wait_closed(sock, WAIT_MS), 0);
    close(sock);

    ipcnet_msg_t m;
    harness_expect(r, IPCNET_MSG_SEND, &m);
    assert_int_equal(m.size, 0);
    harness_expect_nothing(r);
    assert_int_equal(s_fds_settle(f->n[0].pid, base), base);
}

/* --- leaks and limits ------------------------------------------------------------- */

/* A flood of large sends and publishes, read; a receiver that goes away
   with memfds queued to it: afterwards the node has the fds it had. */
static void test_shm_no_fd_leak(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    ipcnet_t *sub = harness_client(&f->n[0], "alpha", "subscriber");
    assert_int_equal(ipcnet_subscribe(sub, "shm.*"), 0);
    harness_sync(r);
    int base = s_fds(f->n[0].pid);
    uint8_t *big = s_pattern(BIG, 7);
    enum { N = 300 };
    pid_t pid = harness_fork();
    if (pid == 0) {
        int ok = 1;
        for (int i = 0; i < N && ok; i++) {
            ipcnet_msg_t m;
            ok = ipcnet_recv(r, &m, WAIT_MS) == 0 && m.size == 256 * 1024 &&
                 memcmp(m.data, big + i, m.size) == 0;
        }
        _exit(ok ? 0 : 1);
    }
    for (int i = 0; i < N; i++) {
        assert_int_equal(ipcnet_send(s, "shm.sink", big + i, 256 * 1024, 0), 0);
        if (i % 10 == 0)
            assert_int_equal(ipcnet_publish(s, "shm.t", big, BIG, 0), 0);
    }
    assert_int_equal(harness_reap(pid, 30000), 0);
    for (int i = 0; i < N; i += 10)
        s_expect_payload(sub, IPCNET_MSG_PUBLISH, big, BIG, 1);
    assert_int_equal(s_fds_settle(f->n[0].pid, base), base);

    /* Queued to a subscriber that never reads, which then goes. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(ipcnet_publish(s, "shm.t", big, BIG, 0), 0);
    harness_sync(s);
    print_message("node fds: %d at rest, %d with 20 publications queued\n", base,
                  s_fds(f->n[0].pid));
    harness_client_close(&sub);
    assert_int_equal(s_fds_settle(f->n[0].pid, base - 1), base - 1);
    free(big);
}

/* --shm-max-fds 4: a receiver that does not read, its socket full of
   small messages: however many memfds a sender sends it, the node holds
   at most 4 queued to it (and the one frame it is pausing on); the sender
   waits; all arrive in order once it reads. */
static void test_shm_max_fds(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    s_start(f, (char *[]) { "--shm-max-fds", "4", NULL });
    ipcnet_t *r = harness_holder(&f->n[0], "alpha", "receiver", "shm.sink");
    harness_sync(r);
    int base = s_fds(f->n[0].pid);
    uint8_t *big = s_pattern(BIG, 8);
    enum { SMALL = 2000, N = 64 };
    pid_t pid = harness_fork();
    if (pid == 0) {
        ipcnet_t *s = NULL;
        if (ipcnet_connect(&s, f->n[0].sock, "sender", 0) < 0)
            _exit(2);
        for (int i = 0; i < SMALL; i++)
            if (ipcnet_send(s, "shm.sink", big, 1024, IPCNET_MORE) < 0)
                _exit(1);
        for (int i = 0; i < N; i++)
            if (ipcnet_send(s, "shm.sink", big + i, BIG - 64, 0) < 0)
                _exit(1);
        ipcnet_flush(s, 30000);
        ipcnet_close(&s);
        _exit(0);
    }
    int64_t t0 = harness_now_ms();
    int held = 0;
    while (harness_now_ms() - t0 < 2000 && (held = s_fds(f->n[0].pid)) < base + 1 + 4)
        usleep(20 * 1000);
    usleep(300 * 1000);
    held = s_fds(f->n[0].pid);
    print_message("node fds: %d at rest, %d with a sender pushing %d memfds at a receiver "
                  "that does not read\n", base, held, N);
    /* the sender's connection, 4 queued, the frame it is paused on */
    assert_true(held >= base + 1 + 4);
    assert_true(held <= base + 1 + 4 + 1);
    ipcnet_msg_t m;
    for (int i = 0; i < SMALL; i++) {
        harness_expect(r, IPCNET_MSG_SEND, &m);
        assert_int_equal(m.size, 1024);
    }
    for (int i = 0; i < N; i++)
        s_expect_payload(r, IPCNET_MSG_SEND, big + i, BIG - 64, 1);
    assert_int_equal(harness_reap(pid, 30000), 0);
    assert_int_equal(s_fds_settle(f->n[0].pid, base), base);
    free(big);
}

/* --- across nodes ------------------------------------------------------------------- */

/* 1 MiB from alpha's client to beta's: it leaves alpha read from the
   sender's memfd and reaches beta's receiver as a memfd too. */
static void test_shm_across_nodes(void **state)
{
    WATCH(60);
    fx_t *f = *state;
    s_start(f, (char *[]) { NULL });
    char peer[64];
    snprintf(peer, sizeof peer, "tcp://127.0.0.1:%d", harness_node_port(&f->n[0]));
    if (harness_start_named(&f->n[1], "beta",
                            (char *[]) { "--peer", peer, "--shm-threshold", "64K", NULL }) < 0)
        fail_msg("cannot start beta");
    ipcnet_t *q = harness_query_conn(&f->n[0], "alpha", &f->q[0]);
    ipcnet_t *r = harness_holder(&f->n[1], "beta", "receiver", "shm.far");
    ipcnet_t *sub = harness_client(&f->n[1], "beta", "subscriber");
    assert_int_equal(ipcnet_subscribe(sub, "shm.*"), 0);
    int64_t t0 = harness_now_ms();
    while (!harness_has_service(q, "shm.far", "beta", NULL, NULL) && harness_now_ms() - t0 < 10000)
        usleep(20 * 1000);
    assert_true(harness_has_service(q, "shm.far", "beta", NULL, NULL));
    ipcnet_t *s = harness_client(&f->n[0], "alpha", "sender");
    uint8_t *big = s_pattern(BIG, 9);
    assert_int_equal(ipcnet_send(s, "shm.far", big, BIG, IPCNET_CONFIRM), 0);
    s_expect_payload(r, IPCNET_MSG_SEND, big, BIG, 1);
    assert_int_equal(s_stat(r, "shm_made"), 1);     /* beta wrote it once into a memfd */
    usleep(200 * 1000);     /* beta has learnt the subscription */
    assert_int_equal(ipcnet_publish(s, "shm.t", big + 7, BIG - 7, IPCNET_CONFIRM), 0);
    s_expect_payload(sub, IPCNET_MSG_PUBLISH, big + 7, BIG - 7, 1);
    free(big);
}

int main(int argc, char **argv)
{
    harness_main(argc, argv, WAIT_MS, QUIET_MS);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shm_send_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_threshold_zero_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_request_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_publish_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_zero_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_zero_copy_to_a_copying_node, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_reconnect_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_bad_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_stray_and_missing_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_no_fd_leak, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_max_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shm_across_nodes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
