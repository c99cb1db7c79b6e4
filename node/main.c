/*  main.c: ipc-node: the options to a configuration, then the daemon or
    one command-line verb.

    With no verb it serves: one thread, one loop, until SIGTERM or SIGINT.
    With a verb (--services, --send, ...) it connects to the local node as
    any client would, does that one thing and exits. */

#include "cli.h"
#include "keys.h"
#include "log.h"
#include "notify.h"
#include "loop.h"
#include "options.h"
#include "policy.h"
#include "privs.h"
#include "server.h"

#include <czmq.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

static server_t *s_server;     /* for SIGHUP */

static void s_on_signal(loop_t *loop, int fd, int revents, void *arg)
{
    (void) revents;
    (void) arg;
    struct signalfd_siginfo si;
    if (read(fd, &si, sizeof si) != (ssize_t) sizeof si)
        return;
    if (si.ssi_signo == SIGHUP) {
        if (s_server)
            server_reload(s_server);
        return;
    }
    log_notice("caught signal %u, stopping", si.ssi_signo);
    loop_stop(loop);
}

static int s_serve(const node_config_t *config)
{
    /* The signal handler's work is a readable fd in the loop: nothing runs
       in signal context. SIGPIPE is ignored; a closed client shows up as
       EPIPE from write. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    loop_t *loop = loop_new();
    if (!loop || sfd < 0 || loop_fd_add(loop, sfd, LOOP_IN, s_on_signal, NULL) < 0) {
        log_error("cannot set up the event loop: %s", strerror(errno));
        return 1;
    }
    server_t *server = s_server = server_new(loop, config);
    if (!server) {
        loop_destroy(&loop);
        close(sfd);
        return 1;
    }
    log_notice("node '%s' serving %s (max message %zu bytes, queue limit %zu bytes)",
               config->name, config->socket_path, config->max_message, config->queue_limit);
    /* Its socket and its ROUTER are up, its privileges dropped: ready. */
    char status[512];
    snprintf(status, sizeof status, "READY=1\nSTATUS=node %s serving %s", config->name,
             config->socket_path);
    if (notify(status) < 0)
        log_warning("cannot tell systemd we are ready (NOTIFY_SOCKET=%s)",
                    getenv("NOTIFY_SOCKET"));
    int rc = loop_run(loop);
    notify("STOPPING=1");
    if (rc < 0)
        log_error("event loop failed: %s", strerror(-rc));
    s_server = NULL;
    server_destroy(&server);
    loop_destroy(&loop);
    close(sfd);
    log_notice("node '%s' stopped", config->name);
    return rc < 0 ? 1 : 0;
}

/* --key: this node's public key, from its state directory. */
static int s_print_key(options_t *o)
{
    char key[41];
    zsys_handler_set(NULL);
    zsys_set_logstream(stderr);
    node_config_t *config = &o->config;
    if (!config->state_dir[0] &&
        options_default_state_dir(config->state_dir, sizeof config->state_dir) < 0) {
        fprintf(stderr, "ipc-node: the default state directory is too long; use --state-dir\n");
        return 2;
    }
    if (keys_public(config->state_dir, key) < 0)
        return 1;
    if (o->cli.json)
        printf("{\"key\": \"%s\"}\n", key);   /* Z85 has no " or \\: nothing to escape */
    else
        printf("%s\n", key);
    return 0;
}

/* --policy-check: the rules as the node would read them. */
static int s_check_policy(const char *path)
{
    policy_t *policy = policy_new();
    int rc = policy ? policy_load(policy, path, 0) : -ENOMEM;
    if (rc == 0) {
        policy_print(policy, stdout);
        fprintf(stderr, "ipc-node: %s: no error\n", path);
    }
    policy_destroy(&policy);
    return rc == 0 ? 0 : 2;
}

int main(int argc, char **argv)
{
    options_t o;
    int rc = options_parse(&o, argc, argv);
    if (rc < 0 && o.cli.verb != VERB_NONE)
        rc = cli_run(&o.cli);
    else if (rc < 0 && o.key_verb)
        rc = s_print_key(&o);
    else if (rc < 0 && o.policy_check)
        rc = s_check_policy(o.policy_check);
    else if (rc < 0 && (rc = options_daemon(&o)) == 0) {
        /* The daemon. czmq must not install its own signal handlers, and
           logs go to stderr (and syslog), not stdout: ours through log.c,
           czmq's own few lines as czmq writes them. */
        zsys_handler_set(NULL);
        zsys_set_logident("ipc-node");
        zsys_set_logstream(stderr);
        log_open(o.use_syslog);
        rc = privs_plan(&o.config) < 0 ? 1 : s_serve(&o.config);
    }
    options_free(&o);
    return rc;
}
