/*  cli_tools.c: the verbs that check and measure: --check (an exit status
    for scripts and health checks), --ping (round trips to this node, a
    peer, or a service), --bench (a quick figure), and --listen --exec
    (answer each request with a command's output). */

#include "cli.h"
#include "ipcnet.h"
#include "json.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t s_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long) (ms % 1000) * 1000000 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int s_cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

/* The value of field col (0-based) of the first line of text whose first
   field (or whose field by) is key; copied into buf. NULL if none. */
static const char *s_field(const char *text, int by, const char *key, int col, char *buf,
                           size_t size)
{
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        const char *f = line, *fields[10];
        size_t lens[10];
        int n = 0;
        while (n < 10) {
            const char *tab = memchr(f, '\t', len - (size_t) (f - line));
            fields[n] = f;
            lens[n] = tab ? (size_t) (tab - f) : len - (size_t) (f - line);
            n++;
            if (!tab)
                break;
            f = tab + 1;
        }
        if (by < n && col < n && lens[by] == strlen(key) && memcmp(fields[by], key, lens[by]) == 0) {
            snprintf(buf, size, "%.*s", (int) lens[col], fields[col]);
            return buf;
        }
        line = end ? end + 1 : line + len;
    }
    return NULL;
}

/* Lines of a listing whose field col is val; with skip, the first line
   (the node itself, in the peers listing) aside. */
static int s_count(const char *text, int col, const char *val, int skip)
{
    int n = 0, row = 0;
    for (const char *line = text; *line; row++) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t) (end - line) : strlen(line);
        const char *f = line;
        for (int c = 0; c < col && f; c++) {
            f = memchr(f, '\t', len - (size_t) (f - line));
            f = f ? f + 1 : NULL;
        }
        if (row >= skip && f) {
            const char *tab = memchr(f, '\t', len - (size_t) (f - line));
            size_t fl = tab ? (size_t) (tab - f) : len - (size_t) (f - line);
            n += fl == strlen(val) && memcmp(f, val, fl) == 0;
        }
        line = end ? end + 1 : line + len;
    }
    return n;
}

/* --- --check ------------------------------------------------------------------------ */

int cli_check(const cli_t *cli)
{
    int64_t t0 = s_now_us();
    ipcnet_t *c = cli_connect(cli, "ipc-node-check", 0);
    if (!c)
        return 1;
    char *stats = NULL, *peers = NULL, *names = NULL;
    int rc = ipcnet_query(c, IPCNET_Q_STATS, &stats);
    int64_t took = s_now_us() - t0;
    if (rc == 0)
        rc = ipcnet_query(c, IPCNET_Q_PEERS, &peers);
    if (rc == 0 && cli->target)
        rc = ipcnet_query(c, IPCNET_Q_SERVICES, &names);
    if (rc < 0) {
        cli_failed(c, "check", ipcnet_node(c), rc);
        ipcnet_close(&c);
        return 1;
    }
    char clients[32] = "?";
    s_field(stats, 0, "clients", 1, clients, sizeof clients);
    int up = s_count(peers, 4, "up", 1);
    int held = names ? s_count(names, 0, cli->target, 0) : -1;
    int ok = !cli->target || held > 0;
    if (cli->json) {
        json_open('{');
        json_key("ok");
        json_raw(ok ? "true" : "false");
        json_key("node");
        json_cstring(ipcnet_node(c));
        json_key("answer_us");
        json_number(took);
        json_key("clients");
        json_field(clients, 1);
        json_key("peers_up");
        json_number(up);
        if (cli->target) {
            json_key("name");
            json_cstring(cli->target);
            json_key("holders");
            json_number(held);
        }
        json_close();
        json_end();
    } else if (ok)
        printf("ok: node %s answers (connected and listed in %.3f ms): %s clients, %d peers "
               "up%s%s%s\n", ipcnet_node(c), (double) took / 1000.0, clients, up,
               cli->target ? ", " : "", cli->target ? cli->target : "",
               cli->target ? " is held" : "");
    else
        printf("not ok: node %s answers, but nobody holds %s\n", ipcnet_node(c), cli->target);
    free(stats);
    free(peers);
    free(names);
    ipcnet_close(&c);
    return ok ? 0 : 1;
}

/* --- --ping -------------------------------------------------------------------------- */

static void s_summary(const cli_t *cli, const char *what, int64_t *us, int n, int sent)
{
    qsort(us, (size_t) n, sizeof *us, s_cmp64);
    double sum = 0;
    for (int i = 0; i < n; i++)
        sum += (double) us[i];
    if (cli->json) {
        json_open('{');
        json_key("to");
        json_cstring(what);
        json_key("sent");
        json_number(sent);
        json_key("answered");
        json_number(n);
        if (n) {
            json_key("min_us");
            json_number(us[0]);
            json_key("median_us");
            json_number(us[n / 2]);
            json_key("max_us");
            json_number(us[n - 1]);
        }
        json_close();
        json_end();
        return;
    }
    printf("--- %s: %d sent, %d answered", what, sent, n);
    if (n)
        printf(", round trip min/avg/median/max %.3f/%.3f/%.3f/%.3f ms", (double) us[0] / 1000.0,
               sum / n / 1000.0, (double) us[n / 2] / 1000.0, (double) us[n - 1] / 1000.0);
    putchar('\n');
}

int cli_ping(ipcnet_t *c, const cli_t *cli)
{
    int count = cli->count > 0 ? (int) (cli->count < 100000 ? cli->count : 100000) : 5;
    int64_t *us = calloc((size_t) count, sizeof *us);
    if (!us)
        return 1;
    int n = 0, sent = 0;
    char *peers = NULL;
    char row[64];
    int is_peer = cli->target && ipcnet_query(c, IPCNET_Q_PEERS, &peers) == 0 &&
                  s_field(strchr(peers, '\n') ? strchr(peers, '\n') + 1 : "", 0, cli->target, 0,
                          row, sizeof row);
    free(peers);
    const char *what = cli->target ? cli->target : ipcnet_node(c);
    for (int i = 0; i < count; i++) {
        if (i)
            s_sleep_ms(is_peer ? 1000 : 200);
        sent++;
        int64_t t0 = s_now_us();
        int rc;
        if (is_peer) {
            /* A peer: as its heartbeats measure it. */
            rc = ipcnet_query(c, IPCNET_Q_PEERS, &peers);
            char state[32] = "?", rtt[32] = "0", seen[32] = "?";
            if (rc == 0) {
                s_field(peers, 0, cli->target, 4, state, sizeof state);
                s_field(peers, 0, cli->target, 5, rtt, sizeof rtt);
                s_field(peers, 0, cli->target, 6, seen, sizeof seen);
                free(peers);
            }
            if (rc == 0 && strcmp(state, "up") == 0 && atoll(rtt) > 0) {
                us[n++] = atoll(rtt);
                if (!cli->json)
                    printf("%s: up, round trip %.3f ms (its heartbeats), heard from %s ms ago\n",
                           what, (double) atoll(rtt) / 1000.0, seen);
            } else if (!cli->json)
                printf("%s: %s\n", what, rc < 0 ? ipcnet_strerror(rc) : state);
            continue;
        }
        if (cli->target) {
            /* A service: a request it answers (an --echo listener does). */
            ipcnet_msg_t reply;
            rc = ipcnet_request(c, cli->target, "ping", 4,
                                cli->timeout_ms > 0 ? cli->timeout_ms : 1000, &reply);
        } else {
            /* This node: a listing is one round trip through it. */
            char *text;
            rc = ipcnet_query(c, IPCNET_Q_STATS, &text);
            if (rc == 0)
                free(text);
        }
        int64_t took = s_now_us() - t0;
        if (rc == 0)
            us[n++] = took;
        if (!cli->json) {
            if (rc == 0)
                printf("from %s: seq=%d time=%.3f ms\n", what, i + 1, (double) took / 1000.0);
            else
                printf("from %s: seq=%d %s\n", what, i + 1,
                       rc == -ENOENT ? "no such name: nobody holds it" : ipcnet_strerror(rc));
        }
    }
    s_summary(cli, what, us, n, sent);
    free(us);
    return n == sent ? 0 : 1;
}

/* --- --bench -------------------------------------------------------------------------- */

#define BENCH_MSGS   100000
#define BENCH_SIZE   64
#define BENCH_RTT    2000

/* The responder of a local --bench, in a child: counts sends, answers
   requests; "done" is answered once every send came. */
static int s_responder(const cli_t *cli, const char *name, int ready)
{
    ipcnet_t *c = cli_connect(cli, "ipc-node-bench", 0);
    if (!c || ipcnet_bind(c, name) < 0)
        return 2;
    if (write(ready, "r", 1) != 1)
        return 3;
    long got = 0;
    for (;;) {
        ipcnet_msg_t m;
        if (ipcnet_recv(c, &m, 30000) < 0)
            return 4;
        if (m.kind == IPCNET_MSG_SEND)
            got++;
        else if (m.kind == IPCNET_MSG_REQUEST) {
            if (m.size == 4 && memcmp(m.data, "quit", 4) == 0) {
                ipcnet_reply(c, &m, NULL, 0);
                ipcnet_flush(c, 1000);
                break;
            }
            if (m.size == 4 && memcmp(m.data, "done", 4) == 0)
                ipcnet_reply(c, &m, &got, sizeof got);
            else
                ipcnet_reply(c, &m, m.data, m.size);
        }
    }
    ipcnet_close(&c);
    return 0;
}

int cli_bench(ipcnet_t *c, const cli_t *cli)
{
    char name[64];
    pid_t pid = -1;
    if (cli->target)
        snprintf(name, sizeof name, "%s", cli->target);
    else {
        snprintf(name, sizeof name, "ipc-node-bench.%d", (int) getpid());
        int pfd[2];
        if (pipe(pfd) < 0)
            return 1;
        pid = fork();
        if (pid == 0) {
            close(pfd[0]);
            _exit(s_responder(cli, name, pfd[1]));
        }
        close(pfd[1]);
        struct pollfd p = { pfd[0], POLLIN, 0 };
        char r;
        int ok = pid > 0 && poll(&p, 1, 10000) == 1 && read(pfd[0], &r, 1) == 1;
        close(pfd[0]);
        if (!ok) {
            fprintf(stderr, "ipc-node: the bench's responder did not start\n");
            if (pid > 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
            }
            return 1;
        }
    }
    int status = 0;
    double rate = 0;
    uint8_t payload[BENCH_SIZE];
    memset(payload, 'x', sizeof payload);
    /* Throughput, on this node only: batched sends, then one request
       answered once they all came. */
    if (pid > 0) {
        int64_t t0 = s_now_us();
        int rc = 0;
        for (int i = 0; i < BENCH_MSGS && rc == 0; i++)
            rc = ipcnet_send(c, name, payload, sizeof payload, IPCNET_MORE);
        ipcnet_msg_t reply;
        if (rc == 0)
            rc = ipcnet_flush(c, 30000);
        if (rc == 0)
            rc = ipcnet_request(c, name, "done", 4, 30000, &reply);
        long got = 0;
        if (rc == 0 && reply.size == sizeof got)
            memcpy(&got, reply.data, sizeof got);
        int64_t took = s_now_us() - t0;
        if (rc < 0 || got != BENCH_MSGS) {
            cli_failed(c, "bench", name, rc < 0 ? rc : -EPROTO);
            status = 1;
        } else
            rate = BENCH_MSGS / ((double) took / 1e6);
    }
    /* Round trips. */
    int64_t *us = calloc(BENCH_RTT, sizeof *us);
    int n = 0;
    for (int i = 0; us && status == 0 && i < BENCH_RTT; i++) {
        ipcnet_msg_t reply;
        int64_t t0 = s_now_us();
        int rc = ipcnet_request(c, name, payload, sizeof payload,
                                cli->timeout_ms > 0 ? cli->timeout_ms : 5000, &reply);
        if (rc < 0) {
            cli_failed(c, "bench", name, rc);
            status = 1;
            break;
        }
        us[n++] = s_now_us() - t0;
    }
    if (us && n > 0) {
        qsort(us, (size_t) n, sizeof *us, s_cmp64);
        if (cli->json) {
            json_open('{');
            json_key("to");
            json_cstring(name);
            if (pid > 0) {
                json_key("messages_per_s");
                json_number((long long) rate);
                json_key("message_bytes");
                json_number(BENCH_SIZE);
            }
            json_key("round_trips");
            json_number(n);
            json_key("median_us");
            json_number(us[n / 2]);
            json_key("p99_us");
            json_number(us[n * 99 / 100]);
            json_close();
            json_end();
        } else {
            if (pid > 0)
                printf("%d messages of %d bytes through node %s: %.0f a second (%.1f MB/s)\n",
                       BENCH_MSGS, BENCH_SIZE, ipcnet_node(c), rate, rate * BENCH_SIZE / 1e6);
            printf("%d request round trips to %s: median %.1f us, p99 %.1f us, max %.1f us\n",
                   n, name, (double) us[n / 2], (double) us[n * 99 / 100], (double) us[n - 1]);
        }
    }
    free(us);
    if (pid > 0) {
        ipcnet_msg_t reply;
        if (ipcnet_request(c, name, "quit", 4, 2000, &reply) < 0)
            kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return status;
}

/* --- --listen --exec ----------------------------------------------------------------------- */

int cli_exec_reply(ipcnet_t *c, const cli_t *cli, const ipcnet_msg_t *req)
{
    int in[2], out[2];
    if (pipe(in) < 0)
        return -errno;
    if (pipe(out) < 0) {
        close(in[0]);
        close(in[1]);
        return -errno;
    }
    /* req's views die with the next call on c: keep what we need. */
    char source[256];
    snprintf(source, sizeof source, "%s", req->source);
    uint32_t id = req->id;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execl("/bin/sh", "sh", "-c", cli->exec, (char *) NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (pid < 0) {
        close(in[1]);
        close(out[0]);
        return -EAGAIN;
    }
    size_t max = ipcnet_max_message(c), len = 0, fed = 0, cap = 4096;
    char *buf = malloc(cap);
    int64_t deadline = s_now_us() + (int64_t) (req->timeout_ms ? req->timeout_ms : 30000) * 1000;
    int rc = buf ? 0 : -ENOMEM, open_in = 1;
    signal(SIGPIPE, SIG_IGN);
    while (rc == 0) {
        struct pollfd p[2] = { { out[0], POLLIN, 0 }, { open_in ? in[1] : -1, POLLOUT, 0 } };
        int64_t left = (deadline - s_now_us()) / 1000;
        if (left <= 0) {
            rc = -ETIMEDOUT;
            break;
        }
        if (open_in && fed == req->size) {
            close(in[1]);
            open_in = 0;
            continue;
        }
        if (poll(p, 2, (int) (left > 1000 ? 1000 : left)) < 0 && errno != EINTR)
            rc = -errno;
        if (open_in && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(in[1], (const char *) req->data + fed, req->size - fed);
            if (w > 0)
                fed += (size_t) w;
            else {
                close(in[1]);       /* it does not read its input: fine */
                open_in = 0;
            }
        }
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (len == cap && cap <= max) {
                char *more = realloc(buf, cap * 2);
                if (!more) {
                    rc = -ENOMEM;
                    break;
                }
                buf = more;
                cap *= 2;
            }
            ssize_t r = read(out[0], buf + len, cap - len);
            if (r == 0)
                break;      /* its output ended */
            if (r > 0 && (len += (size_t) r) > max)
                rc = -EMSGSIZE;
        }
    }
    if (open_in)
        close(in[1]);
    close(out[0]);
    if (rc < 0)
        kill(pid, SIGKILL);
    int wst;
    waitpid(pid, &wst, 0);
    if (rc == 0)
        rc = ipcnet_reply_to(c, source, id, buf, len);
    else
        fprintf(stderr, "ipc-node: --exec for the request of %s: %s; not answered\n", source,
                rc == -ETIMEDOUT ? "it ran past the request's timeout" : ipcnet_strerror(rc));
    free(buf);
    return rc;
}
