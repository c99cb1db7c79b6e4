/*  soak_traffic.c: the traffic of the soak and partition tests, through
    libipcnet, with a record of everything that happens kept in files that
    survive the process's own SIGKILL (every line is one write(2) to a
    file opened O_APPEND: once the call returns, the line is the kernel's).

    soak_traffic send --socket PATH --id ID --ledger FILE --to NAME[,NAME...]
                      [--confirm | --async] [--rate HZ] [--count N]
                      [--seconds S] [--size-max BYTES] [--topic T --pub-every N]
        Sends numbered, checksummed messages to the names in turn, each
        one once (never again after a failure). The ledger gets, for each:
          B seq dest size t_ms          before the send
          R seq rc t_ms errname why     after it (--confirm: its outcome;
                                        --async: 0, queued, or its error)
          I seq libid                   --async: the library's id of it
        and for publications on --topic (never confirmed):
          PB pseq t_ms / PR pseq rc libid t_ms
        and what comes back later (--async sends, publications):
          E libid err t_ms errname why
        and N down|up gap_ms t_ms for its node going and coming back,
        S pid t_ms when it starts, X t_ms when it ends cleanly. A sender
        started again on the same ledger goes on after the highest seq and
        pseq it finds there, so no number is ever sent twice.

    soak_traffic recv --socket PATH --name NAME --record FILE
                      [--subscribe PATTERN] [--drain-ms MS]
        Holds NAME and records each message it reads:
          M sender seq ok|bad size t_ms   (sender: the ID in the payload)
          U sender pseq ok|bad size t_ms  publications
        and S pid t_ms, BOUND name t_ms, N down|up gap t_ms, E ... (an
        error for the handle, e.g. the name not had back), X t_ms. On
        SIGTERM it stops cleanly: unbinds, reads on until nothing came for
        --drain-ms (default 1000), and only then closes: a message whose
        send was confirmed (written to its socket) is always recorded.

    soak_traffic monitor --socket PATH --record FILE [--pattern P]
        Watches names and peers: "EV name|peer up|down NAME NODE t_ms".

    A payload is "SOAK <id> <seq> <kind> <size> <sum>\n" then bytes made
    from (id, seq); sum is FNV-1a 64 of the head before it and the bytes.

    Every wait is bounded; the process ends on SIGTERM or SIGINT, or at
    --seconds / --count.
*/

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipcnet.h"

#define HEAD_MAX 160

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = { (time_t) (ms / 1000), (long) (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);       /* a signal cuts it short: s_stop is then set */
}

static int s_rec = -1;

static void s_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line to the record, in one write. Spaces and newlines in the node's
   words become '_' so that every line splits into fields. */
static void s_log(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t) n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    for (ssize_t off = 0; off < n;) {
        ssize_t w = write(s_rec, line + off, (size_t) (n - off));
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("soak_traffic: write record");
            exit(3);
        }
        off += w;
    }
}

static void s_word(char *dst, size_t cap, const void *src, size_t len)
{
    size_t n = 0;
    const unsigned char *p = src;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        dst[n++] = p[i] > ' ' && p[i] < 0x7f ? (char) p[i] : '_';
    if (n == 0 && cap > 1)
        dst[n++] = '-';
    dst[n] = 0;
}

static const char *s_errname(int rc)
{
    switch (-rc) {
    case 0: return "OK";
    case ENOENT: return "ENOENT";
    case ECONNRESET: return "ECONNRESET";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENOTCONN: return "ENOTCONN";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EMSGSIZE: return "EMSGSIZE";
    case EAGAIN: return "EAGAIN";
    case ENOBUFS: return "ENOBUFS";
    case EACCES: return "EACCES";
    case EINVAL: return "EINVAL";
    case EPIPE: return "EPIPE";
    case ENOMEM: return "ENOMEM";
    default: return "EOTHER";
    }
}

/* --- payloads --------------------------------------------------------------------- */

static uint64_t s_fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t s_rand(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* Builds the payload of (id, seq, kind) with body bytes; returns its size. */
static size_t s_payload(char *buf, size_t cap, const char *id, uint64_t seq, char kind,
                        size_t body)
{
    uint64_t x = s_fnv(FNV_INIT, id, strlen(id)) ^ (seq * 0x9E3779B97F4A7C15ull) ^ (uint64_t) kind;
    if (!x)
        x = 1;
    char head[HEAD_MAX];
    int hn = snprintf(head, sizeof head, "SOAK %s %" PRIu64 " %c %zu", id, seq, kind, body);
    if (hn < 0 || (size_t) hn >= sizeof head)
        return 0;
    uint64_t h = s_fnv(FNV_INIT, head, (size_t) hn);
    char *b = buf + HEAD_MAX;
    if (HEAD_MAX + body > cap)
        return 0;
    for (size_t i = 0; i < body; i++)
        b[i] = (char) (s_rand(&x) >> 24);
    h = s_fnv(h, b, body);
    int n = snprintf(buf, HEAD_MAX, "%s %016" PRIx64 "\n", head, h);
    if (n < 0 || n >= HEAD_MAX)
        return 0;
    memmove(buf + n, b, body);
    return (size_t) n + body;
}

/* Checks a payload: 1 if well formed and its sum right (id, seq, kind
   filled), 0 if not (id "?" when it cannot be read). */
static int s_verify(const void *data, size_t size, char *id, size_t idcap, uint64_t *seq,
                    char *kind)
{
    snprintf(id, idcap, "?");
    *seq = 0;
    *kind = '?';
    const char *p = data, *nl = memchr(p, '\n', size < HEAD_MAX ? size : HEAD_MAX);
    if (!nl)
        return 0;
    char head[HEAD_MAX];
    size_t hl = (size_t) (nl - p);
    memcpy(head, p, hl);
    head[hl] = 0;
    char idb[HEAD_MAX];
    uint64_t sq, sum;
    size_t body;
    char k;
    if (sscanf(head, "SOAK %159s %" SCNu64 " %c %zu %" SCNx64, idb, &sq, &k, &body, &sum) != 5)
        return 0;
    snprintf(id, idcap, "%s", idb);
    *seq = sq;
    *kind = k;
    char *last = strrchr(head, ' ');
    if (!last || size != hl + 1 + body)
        return 0;
    uint64_t h = s_fnv(FNV_INIT, head, (size_t) (last - head));
    h = s_fnv(h, nl + 1, body);
    return h == sum;
}

/* --- options ---------------------------------------------------------------------- */

typedef struct {
    const char *mode, *socket, *id, *ledger, *to, *topic, *name, *record, *subscribe,
        *pattern;
    int confirm, pub_every, drain_ms;
    double rate, seconds;
    long count;
    size_t size_max;
} opts_t;

static void s_usage(void)
{
    fprintf(stderr,
            "usage: soak_traffic send --socket P --id ID --ledger F --to N[,N...] [--confirm|--async]\n"
            "                         [--rate HZ] [--count N] [--seconds S] [--size-max B]\n"
            "                         [--topic T --pub-every N]\n"
            "       soak_traffic recv --socket P --name N --record F [--subscribe PAT] [--drain-ms MS]\n"
            "       soak_traffic monitor --socket P --record F [--pattern P]\n");
    exit(2);
}

static void s_parse(opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->confirm = 1;
    o->rate = 20;
    o->size_max = 2048;
    o->drain_ms = 1000;
    o->pattern = "*";
    if (argc < 2)
        s_usage();
    o->mode = argv[1];
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(s, dst) if (strcmp(a, s) == 0 && v) { dst = v; i++; continue; }
        ARG("--socket", o->socket);
        ARG("--id", o->id);
        ARG("--ledger", o->ledger);
        ARG("--to", o->to);
        ARG("--topic", o->topic);
        ARG("--name", o->name);
        ARG("--record", o->record);
        ARG("--subscribe", o->subscribe);
        ARG("--pattern", o->pattern);
#undef ARG
        if (strcmp(a, "--confirm") == 0) { o->confirm = 1; continue; }
        if (strcmp(a, "--async") == 0) { o->confirm = 0; continue; }
        if (strcmp(a, "--rate") == 0 && v) { o->rate = atof(v); i++; continue; }
        if (strcmp(a, "--seconds") == 0 && v) { o->seconds = atof(v); i++; continue; }
        if (strcmp(a, "--count") == 0 && v) { o->count = atol(v); i++; continue; }
        if (strcmp(a, "--size-max") == 0 && v) { o->size_max = (size_t) atol(v); i++; continue; }
        if (strcmp(a, "--pub-every") == 0 && v) { o->pub_every = atoi(v); i++; continue; }
        if (strcmp(a, "--drain-ms") == 0 && v) { o->drain_ms = atoi(v); i++; continue; }
        fprintf(stderr, "soak_traffic: unknown or incomplete option %s\n", a);
        s_usage();
    }
    if (!o->socket)
        s_usage();
}

static void s_open_record(const char *path)
{
    s_rec = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (s_rec < 0) {
        fprintf(stderr, "soak_traffic: %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* Connects with IPCNET_RECONNECT; the node may be starting (or being
   restarted by the chaos): tries for up to 15 s. */
static ipcnet_t *s_connect(const char *socket, const char *label)
{
    int64_t t0 = s_mono_ms();
    for (;;) {
        ipcnet_t *c = NULL;
        int rc = ipcnet_connect(&c, socket, label, IPCNET_RECONNECT);
        if (rc == 0)
            return c;
        if (s_stop || s_mono_ms() - t0 > 15000) {
            fprintf(stderr, "soak_traffic: connect %s: %s\n", socket, ipcnet_strerror(rc));
            exit(1);
        }
        s_sleep_ms(100);
    }
}

static void s_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Records what a handle reads that is not traffic: errors, node events. */
static void s_note_other(const ipcnet_msg_t *m)
{
    char why[256];
    if (m->kind == IPCNET_MSG_ERROR) {
        s_word(why, sizeof why, m->data, m->size);
        s_log("E %" PRIu32 " %d %" PRId64 " %s %s", m->id, m->error, s_now_ms(),
              s_errname(m->error), why);
    } else if (m->kind == IPCNET_MSG_EVENT && m->event == IPCNET_EV_NODE_DOWN) {
        s_log("N down 0 %" PRId64, s_now_ms());
    } else if (m->kind == IPCNET_MSG_EVENT && m->event == IPCNET_EV_NODE_UP) {
        s_log("N up %" PRIu32 " %" PRId64, m->gap_ms, s_now_ms());
    }
}

/* --- send ------------------------------------------------------------------------- */

/* The highest seq (B lines) and pseq (PB lines) in an existing ledger. */
static void s_resume(const char *path, uint64_t *seq, uint64_t *pseq)
{
    *seq = *pseq = 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1200];
    while (fgets(line, sizeof line, f)) {
        uint64_t n;
        if (sscanf(line, "B %" SCNu64, &n) == 1 && n > *seq)
            *seq = n;
        else if (sscanf(line, "PB %" SCNu64, &n) == 1 && n > *pseq)
            *pseq = n;
    }
    fclose(f);
}

static int s_send(const opts_t *o)
{
    if (!o->id || !o->ledger || !o->to)
        s_usage();
    char *tolist = strdup(o->to);
    char *dests[64];
    int nd = 0;
    for (char *save = NULL, *t = strtok_r(tolist, ",", &save); t && nd < 64;
         t = strtok_r(NULL, ",", &save))
        dests[nd++] = t;
    if (nd == 0)
        s_usage();
    uint64_t seq, pseq;
    s_resume(o->ledger, &seq, &pseq);
    s_open_record(o->ledger);
    ipcnet_t *c = s_connect(o->socket, o->id);
    s_log("S %d %" PRId64 " %s", (int) getpid(), s_now_ms(), ipcnet_address(c));
    size_t cap = HEAD_MAX + o->size_max + 1;
    char *buf = malloc(cap);
    uint64_t x = (uint64_t) getpid() * 2654435761u + (uint64_t) s_now_ms();
    int64_t t0 = s_mono_ms(), next = t0;
    int64_t period = o->rate > 0 ? (int64_t) (1000.0 / o->rate) : 0;
    long sent = 0;
    char why[256];
    while (!s_stop && (o->count <= 0 || sent < o->count) &&
           (o->seconds <= 0 || s_mono_ms() - t0 < (int64_t) (o->seconds * 1000))) {
        const char *dest = dests[(seq) % (uint64_t) nd];
        seq++;
        size_t body = o->size_max > 0 ? (size_t) (s_rand(&x) % (o->size_max + 1)) : 0;
        size_t n = s_payload(buf, cap, o->id, seq, 'M', body);
        s_log("B %" PRIu64 " %s %zu %" PRId64, seq, dest, n, s_now_ms());
        int rc = ipcnet_send(c, dest, buf, n, o->confirm ? IPCNET_CONFIRM : 0);
        uint32_t id = ipcnet_last_id(c);
        s_word(why, sizeof why, rc < 0 ? ipcnet_last_error(c) : "", rc < 0 ? strlen(ipcnet_last_error(c)) : 0);
        s_log("R %" PRIu64 " %d %" PRId64 " %s %s", seq, rc, s_now_ms(), s_errname(rc), why);
        if (!o->confirm && rc == 0)
            s_log("I %" PRIu64 " %" PRIu32, seq, id);
        sent++;
        if (o->topic && o->pub_every > 0 && sent % o->pub_every == 0) {
            pseq++;
            n = s_payload(buf, cap, o->id, pseq, 'P', body / 4);
            s_log("PB %" PRIu64 " %" PRId64, pseq, s_now_ms());
            rc = ipcnet_publish(c, o->topic, buf, n, 0);
            s_log("PR %" PRIu64 " %d %" PRIu32 " %" PRId64, pseq, rc, ipcnet_last_id(c),
                  s_now_ms());
        }
        ipcnet_msg_t m;
        while (ipcnet_recv(c, &m, 0) == 0)
            s_note_other(&m);
        if (period > 0) {
            next += period;
            int64_t now = s_mono_ms();
            if (next < now - 1000)
                next = now;     /* a long wait (node away): no catching up */
            s_sleep_ms(next - now);
        }
    }
    /* What comes back late (errors of async sends, of publications). */
    ipcnet_flush(c, 2000);
    int64_t end = s_mono_ms() + (o->confirm ? 200 : 2000);
    ipcnet_msg_t m;
    while (s_mono_ms() < end) {
        int rc = ipcnet_recv(c, &m, 100);
        if (rc == 0)
            s_note_other(&m);
        else if (rc != -ETIMEDOUT && rc != -EAGAIN)
            break;
    }
    s_log("X %" PRId64, s_now_ms());
    ipcnet_close(&c);
    free(buf);
    free(tolist);
    return 0;
}

/* --- recv ------------------------------------------------------------------------- */

static void s_record_msg(const ipcnet_msg_t *m)
{
    char id[HEAD_MAX];
    uint64_t seq;
    char kind;
    int good = s_verify(m->data, m->size, id, sizeof id, &seq, &kind);
    int pub = m->kind == IPCNET_MSG_PUBLISH;
    if (good && kind != (pub ? 'P' : 'M'))
        good = 0;
    s_log("%s %s %" PRIu64 " %s %zu %" PRId64, pub ? "U" : "M", id, seq, good ? "ok" : "bad",
          m->size, s_now_ms());
}

static int s_recv(const opts_t *o)
{
    if (!o->name || !o->record)
        s_usage();
    s_open_record(o->record);
    ipcnet_t *c = s_connect(o->socket, o->name);
    s_log("S %d %" PRId64 " %s", (int) getpid(), s_now_ms(), ipcnet_address(c));
    int rc;
    int64_t t0 = s_mono_ms();
    while ((rc = ipcnet_bind(c, o->name)) < 0) {
        /* The holder before us may not be gone yet from its node. */
        if (s_stop || s_mono_ms() - t0 > 15000) {
            fprintf(stderr, "soak_traffic: bind %s: %s\n", o->name, ipcnet_strerror(rc));
            s_log("E 0 %d %" PRId64 " %s bind", rc, s_now_ms(), s_errname(rc));
            return 1;
        }
        s_sleep_ms(100);
    }
    s_log("BOUND %s %" PRId64, o->name, s_now_ms());
    if (o->subscribe && (rc = ipcnet_subscribe(c, o->subscribe)) < 0)
        s_log("E 0 %d %" PRId64 " %s subscribe", rc, s_now_ms(), s_errname(rc));
    ipcnet_msg_t m;
    while (!s_stop) {
        rc = ipcnet_recv(c, &m, 200);
        if (rc == -ETIMEDOUT || rc == -EAGAIN)
            continue;
        if (rc < 0) {
            if (s_stop)
                break;
            s_log("E 0 %d %" PRId64 " %s recv", rc, s_now_ms(), s_errname(rc));
            s_sleep_ms(100);
            continue;
        }
        if (m.kind == IPCNET_MSG_SEND || m.kind == IPCNET_MSG_PUBLISH)
            s_record_msg(&m);
        else
            s_note_other(&m);
    }
    /* A clean stop: nothing new is routed here once the name is given
       back; what is already on its way (in our node's queue for us, in the
       socket) is read to the end. */
    s_log("T %" PRId64, s_now_ms());
    rc = ipcnet_unbind(c, o->name);
    s_log("UNBOUND %d %" PRId64, rc, s_now_ms());
    if (o->subscribe)
        ipcnet_unsubscribe(c, o->subscribe);
    int64_t quiet_from = s_mono_ms(), give_up = s_mono_ms() + 20000;
    while (s_mono_ms() - quiet_from < o->drain_ms && s_mono_ms() < give_up) {
        rc = ipcnet_recv(c, &m, 50);
        if (rc < 0)
            continue;
        if (m.kind == IPCNET_MSG_SEND || m.kind == IPCNET_MSG_PUBLISH) {
            s_record_msg(&m);
            quiet_from = s_mono_ms();
        } else {
            s_note_other(&m);
        }
    }
    s_log("X %" PRId64, s_now_ms());
    ipcnet_close(&c);
    return 0;
}

/* --- monitor ---------------------------------------------------------------------- */

static int s_monitor(const opts_t *o)
{
    if (!o->record)
        s_usage();
    s_open_record(o->record);
    ipcnet_t *c = s_connect(o->socket, "soak-monitor");
    s_log("S %d %" PRId64 " %s", (int) getpid(), s_now_ms(), ipcnet_address(c));
    int rc = ipcnet_watch(c, o->pattern);
    if (rc < 0) {
        fprintf(stderr, "soak_traffic: watch: %s\n", ipcnet_strerror(rc));
        return 1;
    }
    ipcnet_msg_t m;
    while (!s_stop) {
        rc = ipcnet_recv(c, &m, 200);
        if (rc < 0) {
            if (rc != -ETIMEDOUT && rc != -EAGAIN)
                s_sleep_ms(100);
            continue;
        }
        if (m.kind != IPCNET_MSG_EVENT) {
            s_note_other(&m);
            continue;
        }
        const char *what = NULL;
        switch (m.event) {
        case IPCNET_EV_NAME_UP: what = "name up"; break;
        case IPCNET_EV_NAME_DOWN: what = "name down"; break;
        case IPCNET_EV_PEER_UP: what = "peer up"; break;
        case IPCNET_EV_PEER_DOWN: what = "peer down"; break;
        default: break;
        }
        if (what)
            s_log("EV %s %s %s %" PRId64, what, m.name[0] ? m.name : "-",
                  m.node[0] ? m.node : "-", s_now_ms());
        else
            s_note_other(&m);
    }
    s_log("X %" PRId64, s_now_ms());
    ipcnet_close(&c);
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    s_parse(&o, argc, argv);
    s_signals();
    if (strcmp(o.mode, "send") == 0)
        return s_send(&o);
    if (strcmp(o.mode, "recv") == 0)
        return s_recv(&o);
    if (strcmp(o.mode, "monitor") == 0)
        return s_monitor(&o);
    s_usage();
    return 2;
}
