/*  load_gen.c: the clients of tests/bench/load.sh.

    load_gen send  --socket P --clients N --seconds S [--size B] [--prefix load]
        N clients, client i sending B-byte messages to "<prefix>.i" as fast
        as the node takes them (IPCNET_DONTWAIT: -EAGAIN is backpressure,
        and the client waits for its socket to drain), for S seconds.
    load_gen recv  --socket P --clients N --seconds S [--prefix load]
        N clients, client i holding "<prefix>.i"; counts what they read,
        checks the order of each sender's numbers, prints the rate every
        10 s; ends S seconds after the first message, or 3 s after the
        last one.
    load_gen probe --socket P --to NAME --every-ms MS --seconds S
        A request every MS ms; prints the latency's p50, p99 and max.

    Each prints one summary line, "key=value ...", on stdout.
*/

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ipcnet.h"

#define MAX_CLIENTS 1024

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void) sig;
    s_stop = 1;
}

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

typedef struct {
    const char *mode, *socket, *prefix, *to;
    int clients, every_ms;
    double seconds;
    size_t size;
} opts_t;

static void s_usage(void)
{
    fprintf(stderr, "usage: load_gen send|recv --socket P --clients N --seconds S [--size B] [--prefix P]\n"
                    "       load_gen probe --socket P --to NAME --every-ms MS --seconds S\n");
    exit(2);
}

static void s_parse(opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->prefix = "load";
    o->size = 256;
    o->clients = 1;
    o->every_ms = 10;
    o->seconds = 60;
    if (argc < 2)
        s_usage();
    o->mode = argv[1];
    for (int i = 2; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (strcmp(a, "--socket") == 0) o->socket = v;
        else if (strcmp(a, "--prefix") == 0) o->prefix = v;
        else if (strcmp(a, "--to") == 0) o->to = v;
        else if (strcmp(a, "--clients") == 0) o->clients = atoi(v);
        else if (strcmp(a, "--every-ms") == 0) o->every_ms = atoi(v);
        else if (strcmp(a, "--seconds") == 0) o->seconds = atof(v);
        else if (strcmp(a, "--size") == 0) o->size = (size_t) atol(v);
        else s_usage();
    }
    if (!o->socket || o->clients < 1 || o->clients > MAX_CLIENTS || o->size < 16)
        s_usage();
}

static ipcnet_t *s_connect(const char *socket, const char *label)
{
    ipcnet_t *c = NULL;
    int rc = ipcnet_connect(&c, socket, label, 0);
    if (rc < 0) {
        fprintf(stderr, "load_gen: connect %s: %s\n", socket, ipcnet_strerror(rc));
        exit(1);
    }
    return c;
}

/* --- send --------------------------------------------------------------------- */

typedef struct {
    uint64_t errors, other;
    char last_error[128];
} sink_t;

static void s_on_sender_msg(ipcnet_t *c, const ipcnet_msg_t *m, void *arg)
{
    (void) c;
    sink_t *s = arg;
    if (m->kind == IPCNET_MSG_ERROR) {
        s->errors++;
        snprintf(s->last_error, sizeof s->last_error, "%s", ipcnet_strerror(m->error));
    } else {
        s->other++;
    }
}

static int s_send(const opts_t *o)
{
    int n = o->clients;
    ipcnet_t **c = calloc((size_t) n, sizeof *c);
    char (*dest)[64] = calloc((size_t) n, sizeof *dest);
    uint64_t *seq = calloc((size_t) n, sizeof *seq);
    int *blocked = calloc((size_t) n, sizeof *blocked);
    struct pollfd *pf = calloc((size_t) n, sizeof *pf);
    char *buf = calloc(1, o->size);
    for (int i = 0; i < n; i++) {
        c[i] = s_connect(o->socket, "load-send");
        snprintf(dest[i], sizeof dest[i], "%s.%d", o->prefix, i);
    }
    sink_t sink = { 0 };
    uint64_t sent = 0, eagain = 0, failed = 0;
    char why[128] = "";
    int64_t end = s_now_us() + (int64_t) (o->seconds * 1e6);
    while (!s_stop && s_now_us() < end) {
        int idle = 1;       /* every client waits for its socket */
        for (int i = 0; i < n; i++) {
            pf[i].fd = ipcnet_fd(c[i]);
            pf[i].events = POLLIN | (blocked[i] || ipcnet_want_write(c[i]) ? POLLOUT : 0);
            pf[i].revents = 0;
            idle &= blocked[i];
        }
        int rc = poll(pf, (nfds_t) n, idle ? 100 : 0);
        if (rc < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (pf[i].revents & (POLLIN | POLLOUT | POLLERR | POLLHUP)) {
                rc = ipcnet_dispatch(c[i], s_on_sender_msg, &sink);
                if (rc < 0 && rc != -EAGAIN) {
                    failed++;
                    snprintf(why, sizeof why, "dispatch: %s", ipcnet_strerror(rc));
                }
            }
            if (blocked[i] && !(pf[i].revents & POLLOUT))
                continue;
            blocked[i] = 0;
            for (int k = 0; k < 64; k++) {
                uint64_t s = seq[i] + 1;
                memcpy(buf, &s, sizeof s);
                rc = ipcnet_send(c[i], dest[i], buf, o->size, IPCNET_DONTWAIT);
                if (rc == -EAGAIN) {
                    eagain++;
                    blocked[i] = 1;
                    break;
                }
                if (rc < 0) {
                    failed++;
                    snprintf(why, sizeof why, "send: %s", ipcnet_strerror(rc));
                    break;
                }
                seq[i] = s;
                sent++;
            }
        }
    }
    /* Whatever is still queued, then what comes back late. */
    for (int i = 0; i < n; i++)
        ipcnet_flush(c[i], 5000);
    int64_t until = s_now_us() + 2000000;
    while (s_now_us() < until)
        for (int i = 0; i < n; i++)
            ipcnet_dispatch(c[i], s_on_sender_msg, &sink);
    printf("sent=%" PRIu64 " backpressure_eagain=%" PRIu64 " send_errors=%" PRIu64
           " errors_back=%" PRIu64 " why=\"%s%s\"\n", sent, eagain, failed, sink.errors, why,
           sink.last_error);
    for (int i = 0; i < n; i++)
        ipcnet_close(&c[i]);
    return 0;
}

/* --- recv --------------------------------------------------------------------- */

typedef struct {
    uint64_t got, ooo, other;
    uint64_t last;
} rx_t;

static void s_on_recv(ipcnet_t *c, const ipcnet_msg_t *m, void *arg)
{
    (void) c;
    rx_t *r = arg;
    if (m->kind != IPCNET_MSG_SEND || m->size < 8) {
        r->other++;
        return;
    }
    uint64_t s;
    memcpy(&s, m->data, sizeof s);
    if (s <= r->last)
        r->ooo++;
    r->last = s;
    r->got++;
}

static int s_recv(const opts_t *o)
{
    int n = o->clients;
    ipcnet_t **c = calloc((size_t) n, sizeof *c);
    rx_t *r = calloc((size_t) n, sizeof *r);
    struct pollfd *pf = calloc((size_t) n, sizeof *pf);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s.%d", o->prefix, i);
        c[i] = s_connect(o->socket, "load-recv");
        int rc = ipcnet_bind(c[i], name);
        if (rc < 0) {
            fprintf(stderr, "load_gen: bind %s: %s\n", name, ipcnet_strerror(rc));
            return 1;
        }
        pf[i].fd = ipcnet_fd(c[i]);
        pf[i].events = POLLIN;
    }
    printf("ready\n");
    fflush(stdout);
    int64_t first = 0, last = 0, tick = 0;
    uint64_t at_tick = 0, total = 0, failed = 0;
    int64_t limit = (int64_t) (o->seconds * 1e6);
    while (!s_stop) {
        int rc = poll(pf, (nfds_t) n, 100);
        if (rc < 0 && errno != EINTR)
            break;
        uint64_t total_before = total;
        for (int i = 0; i < n; i++)
            if (pf[i].revents) {
                uint64_t before = r[i].got;
                rc = ipcnet_dispatch(c[i], s_on_recv, &r[i]);
                if (rc < 0 && rc != -EAGAIN)
                    failed++;
                total += r[i].got - before;
            }
        int64_t now = s_now_us();
        if (total && !first) {
            first = tick = now;
            at_tick = total;
        }
        if (total > total_before)
            last = now;
        if (first && now - tick >= 10000000) {
            printf("rate t=%" PRId64 "s msgs_per_s=%.0f\n", (now - first) / 1000000,
                   (double) (total - at_tick) * 1e6 / (double) (now - tick));
            fflush(stdout);
            tick = now;
            at_tick = total;
        }
        if (first && (now - first > limit + 10000000 || (last && now - last > 3000000)))
            break;
    }
    uint64_t ooo = 0, other = 0;
    for (int i = 0; i < n; i++) {
        ooo += r[i].ooo;
        other += r[i].other;
        ipcnet_close(&c[i]);
    }
    double secs = last > first ? (double) (last - first) / 1e6 : 0;
    printf("received=%" PRIu64 " seconds=%.1f msgs_per_s=%.0f out_of_order=%" PRIu64
           " other=%" PRIu64 " recv_errors=%" PRIu64 "\n", total, secs,
           secs > 0 ? (double) total / secs : 0, ooo, other, failed);
    return 0;
}

/* --- probe -------------------------------------------------------------------- */

static int s_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static int s_probe(const opts_t *o)
{
    if (!o->to)
        s_usage();
    ipcnet_t *c = s_connect(o->socket, "load-probe");
    size_t cap = (size_t) (o->seconds * 1000 / o->every_ms) + 16, n = 0;
    int64_t *lat = calloc(cap, sizeof *lat);
    uint64_t errors = 0;
    char why[128] = "";
    int64_t end = s_now_us() + (int64_t) (o->seconds * 1e6), next = s_now_us();
    while (!s_stop && s_now_us() < end && n < cap) {
        ipcnet_msg_t m;
        int64_t t0 = s_now_us();
        int rc = ipcnet_request(c, o->to, "probe", 5, 2000, &m);
        int64_t t1 = s_now_us();
        if (rc == 0)
            lat[n++] = t1 - t0;
        else {
            errors++;
            snprintf(why, sizeof why, "%s", ipcnet_strerror(rc));
        }
        next += o->every_ms * 1000;
        if (next > t1) {
            struct timespec ts = { 0, (long) (next - t1) * 1000 };
            nanosleep(&ts, NULL);
        } else {
            next = t1;
        }
    }
    qsort(lat, n, sizeof *lat, s_cmp);
    printf("probes=%zu p50_us=%" PRId64 " p99_us=%" PRId64 " max_us=%" PRId64
           " probe_errors=%" PRIu64 " why=\"%s\"\n", n, n ? lat[n / 2] : 0,
           n ? lat[(n * 99) / 100] : 0, n ? lat[n - 1] : 0, errors, why);
    ipcnet_close(&c);
    return 0;
}

int main(int argc, char **argv)
{
    opts_t o;
    s_parse(&o, argc, argv);
    signal(SIGTERM, s_on_signal);
    signal(SIGINT, s_on_signal);
    signal(SIGPIPE, SIG_IGN);
    if (strcmp(o.mode, "send") == 0)
        return s_send(&o);
    if (strcmp(o.mode, "recv") == 0)
        return s_recv(&o);
    if (strcmp(o.mode, "probe") == 0)
        return s_probe(&o);
    s_usage();
    return 2;
}
