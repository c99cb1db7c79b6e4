/*  listener.c: the socket directory, the lock, bind, accept, and the
    client limit. */

#include "listener.h"
#include "log.h"
#include "path.h"
#include "paths.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct listener {
    clients_t *clients;
    directory_t *dir;
    sessions_t *sessions;
    const node_config_t *cfg;
    int fd;
    int lock_fd;
    char lock_path[sizeof ((struct sockaddr_un *) 0)->sun_path + 8];
    uint64_t next_id;
    int made_dir;               /* we made the socket's directory */
    int spare_fd;               /* kept free, to answer a client when none is left */
    loop_timer_t *resume;       /* accepting again after running out of fds */
    int64_t backoff;            /* ms, doubling while fds stay short */
    int64_t last_log;           /* of refusals and shortages, at most every 10 s */
    unsigned refused;           /* since then */
};

#define BACKOFF_MIN     50
#define BACKOFF_MAX     1000
#define LOG_EVERY       10000

/* Says (at most every 10 s, with how many since) that clients are refused. */
static void s_log_refusal(listener_t *self, const char *why)
{
    self->refused++;
    int64_t now = loop_now(self->clients->loop);
    if (now - self->last_log < LOG_EVERY)
        return;
    log_warning("refused %u client%s in %lld s: %s", self->refused,
                self->refused == 1 ? "" : "s",
                (long long) (self->last_log > INT64_MIN / 2 ? (now - self->last_log) / 1000 : 0), why);
    self->refused = 0;
    self->last_log = now;
}

/* Says why, then closes: the HELLO would have had seq 1. */
static void s_refuse(listener_t *self, int fd, int err, const char *why)
{
    uint8_t head[WIRE_HEAD_MAX];
    size_t hlen = wire_encode(head, WIRE_ERROR, WIRE_HELLO, 1, (uint32_t) err, NULL, 0,
                              why, strlen(why), 0);
    if (write(fd, head, hlen) < 0) {
        /* Nothing to do: the client sees the connection close. */
    }
    close(fd);
    s_log_refusal(self, why);
}

static void s_accept(loop_t *loop, int fd, int revents, void *arg);

static void s_resume(loop_t *loop, void *arg)
{
    listener_t *self = arg;
    self->resume = NULL;
    /* Another thread (ZeroMQ's) may have taken the spare's number the
       moment it was closed: it is opened again once one is free. */
    if (self->spare_fd < 0)
        self->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    loop_fd_mod(loop, self->fd, LOOP_IN);
}

/* Out of file descriptors: the spare one lets the client waiting be told
   why rather than left hanging, and the socket is not watched for a
   while (doubling up to a second), so the loop does not spin on it. */
static void s_fd_shortage(listener_t *self, int err)
{
    loop_t *loop = self->clients->loop;
    if (self->spare_fd >= 0) {
        close(self->spare_fd);
        int cfd = accept4(self->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0)
            s_refuse(self, cfd, err, "the node is out of file descriptors");
        self->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    self->backoff = self->backoff ? self->backoff * 2 : BACKOFF_MIN;
    if (self->backoff > BACKOFF_MAX)
        self->backoff = BACKOFF_MAX;
    loop_fd_mod(loop, self->fd, 0);
    if (!self->resume)
        self->resume = loop_timer_add(loop, self->backoff, s_resume, self);
    if (!self->resume)
        loop_fd_mod(loop, self->fd, LOOP_IN);       /* no timer: better a spin than deaf */
}

/* Why this client may not join, or NULL. */
static const char *s_refusal(listener_t *self, const struct ucred *cred, int *ret_err)
{
    *ret_err = EUSERS;
    if (directory_nclients(self->dir) >= self->cfg->max_clients)
        return "too many clients";
    if (cred->uid != 0 &&
        directory_clients_of(self->dir, cred->uid) >= self->cfg->max_clients_per_uid)
        return "too many clients of this user";
    return NULL;
}

static void s_accept(loop_t *loop, int fd, int revents, void *arg)
{
    (void) loop;
    (void) revents;
    listener_t *self = arg;
    /* A bounded batch: a flood of connects cannot starve the clients. */
    for (int i = 0; i < 64; i++) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                s_log_refusal(self, "out of file descriptors (raise the limit with ulimit -n "
                              "or LimitNOFILE=, or lower --max-clients)");
                s_fd_shortage(self, errno);
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                log_warning("accept failed: %s, ignoring", strerror(errno));
            return;
        }
        self->backoff = 0;
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
            cred = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        int err;
        const char *why = s_refusal(self, &cred, &err);
        if (why) {
            s_refuse(self, cfd, err, why);
            continue;
        }
        client_t *c = client_new(self->clients, cfd, ++self->next_id);
        if (!c) {
            close(cfd);
            return;
        }
        snprintf(c->address, sizeof c->address, ":%llu@%s",
                 (unsigned long long) c->id, self->cfg->name);
        c->cred = cred;
        c->since = loop_now(loop);
        struct passwd pw, *found = NULL;
        char pwbuf[1024];
        /* A name frames cannot carry (too long, a byte outside 0x21..0x7E)
           goes as the uid in decimal, as a uid without a name does. */
        int named = getpwuid_r(cred.uid, &pw, pwbuf, sizeof pwbuf, &found) == 0 && found;
        if (named && found->pw_name[0] && wire_user_ok(found->pw_name, strlen(found->pw_name)))
            snprintf(c->user, sizeof c->user, "%s", found->pw_name);
        else
            snprintf(c->user, sizeof c->user, "%u", (unsigned) cred.uid);
        c->userlen = (uint8_t) strlen(c->user);
        c->addrlen = (uint16_t) strlen(c->address);
        /* Its groups, as the system lists them now, for the policy. */
        int ngroups = CLIENT_GROUPS;
        c->groups[0] = cred.gid;
        if (!named || getgrouplist(found->pw_name, cred.gid, c->groups, &ngroups) < 0)
            ngroups = 1;
        c->ngroups = (size_t) ngroups;
        if (directory_add_client(self->dir, c) < 0 || session_start(self->sessions, c) < 0) {
            directory_client_gone(self->dir, c);
            client_free(c);
            continue;
        }
        if (self->cfg->verbose)
            log_info("client %s connected (pid %d, uid %u)", c->address,
                     (int) c->cred.pid, (unsigned) c->cred.uid);
    }
}

/* Who may connect: the socket's owner, root, and the members of its
   group (access_gid), if it has one. */
static mode_t s_socket_mode(const node_config_t *cfg)
{
    return cfg->access_gid != (gid_t) -1 ? 0660 : 0600;
}

/* The socket's directory: made 0750 with the access group (0700 without
   one), or, if it is there, checked to be ours and writable by no one
   else; whoever could write it could swap the socket. */
static int s_make_dir(listener_t *self)
{
    const node_config_t *cfg = self->cfg;
    char dir[sizeof ((struct sockaddr_un *) 0)->sun_path], why[512];
    path_dirname(cfg->socket_path, dir, sizeof dir);
    int has_group = cfg->access_gid != (gid_t) -1;
    int made = path_own_dir(dir, has_group ? 0750 : 0700, cfg->drop ? cfg->run_uid : (uid_t) -1,
                            why, sizeof why);
    if (made < 0) {
        log_error("socket directory: %s", why);
        return -1;
    }
    self->made_dir = made;
    /* Ours, or the system node's own directory made for it by someone else
       (systemd's RuntimeDirectory=): given to the group. Any other
       directory that was there is left as it is: it may hold more than
       our socket. */
    char sysdir[sizeof PATHS_SYSTEM_SOCKET];
    path_dirname(PATHS_SYSTEM_SOCKET, sysdir, sizeof sysdir);
    struct stat st;
    if (has_group && (made || strcmp(dir, sysdir) == 0) && stat(dir, &st) == 0 &&
        st.st_uid == geteuid() &&
        (made || st.st_gid != cfg->access_gid || (st.st_mode & 07777) != 0750) &&
        (chown(dir, (uid_t) -1, cfg->access_gid) < 0 || chmod(dir, 0750) < 0))
        log_warning("cannot give %s to group %u: %s, ignoring", dir,
                    (unsigned) cfg->access_gid, strerror(errno));
    return 0;
}

static int s_listen(listener_t *self)
{
    const char *path = self->cfg->socket_path;
    if (s_make_dir(self) < 0)
        return -1;
    /* The lock decides who serves the path; the socket file alone cannot,
       as a crash leaves it behind. */
    snprintf(self->lock_path, sizeof self->lock_path, "%s.lock", path);
    self->lock_fd = open(self->lock_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (self->lock_fd < 0) {
        log_error("cannot open %s: %s", self->lock_path, strerror(errno));
        return -1;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        log_error("another ipc-node already serves %s", path);
        close(self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (unlink(path) == 0)
        log_notice("removed a stale socket %s left by an earlier node", path);
    /* Made with no one's access, then opened to those who may connect. */
    mode_t old = umask(0177);
    self->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc = self->fd < 0 || bind(self->fd, (struct sockaddr *) &sa, sizeof sa) < 0 ? -1 : 0;
    umask(old);
    const node_config_t *cfg = self->cfg;
    if (rc < 0 || (cfg->access_gid != (gid_t) -1 && chown(path, (uid_t) -1, cfg->access_gid) < 0) ||
        chmod(path, s_socket_mode(cfg)) < 0 || listen(self->fd, SOMAXCONN) < 0) {
        log_error("cannot listen on %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

void listener_hand_over(listener_t *self)
{
    const node_config_t *cfg = self->cfg;
    if (!cfg->drop)
        return;
    /* The socket, its lock and (if we made it) its directory become the
       user's the node runs as, who must remove them when it stops. */
    char dir[sizeof ((struct sockaddr_un *) 0)->sun_path];
    path_dirname(cfg->socket_path, dir, sizeof dir);
    if ((self->made_dir && chown(dir, cfg->run_uid, (gid_t) -1) < 0) ||
        chown(cfg->socket_path, cfg->run_uid, (gid_t) -1) < 0 ||
        fchown(self->lock_fd, cfg->run_uid, (gid_t) -1) < 0)
        log_warning("cannot hand %s over to uid %u: %s; it may stay behind when the node stops",
                    cfg->socket_path, (unsigned) cfg->run_uid, strerror(errno));
}

int listener_serve(listener_t *self, sessions_t *sessions)
{
    self->sessions = sessions;
    return loop_fd_add(self->clients->loop, self->fd, LOOP_IN, s_accept, self);
}

/* Room for every client's descriptor, two for each peer (its DEALER's
   mailbox and connection), and a few of our own. */
static void s_raise_nofile(unsigned clients, unsigned peers)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t) clients + 2 * (rlim_t) peers + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        log_warning("open files limited to %llu: fewer than %u clients will fit",
                    (unsigned long long) rl.rlim_cur, clients);
}

listener_t *listener_new(clients_t *clients, directory_t *dir)
{
    listener_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->clients = clients;
    self->dir = dir;
    self->cfg = clients->cfg;
    self->fd = self->lock_fd = -1;
    self->last_log = INT64_MIN / 2;
    self->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (s_listen(self) < 0) {
        listener_destroy(&self);
        return NULL;
    }
    s_raise_nofile(self->cfg->max_clients, self->cfg->max_peers);
    return self;
}

void listener_destroy(listener_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    listener_t *self = *self_p;
    if (self->fd >= 0) {
        loop_fd_del(self->clients->loop, self->fd);
        close(self->fd);
        unlink(self->cfg->socket_path);
    }
    /* The lock file stays: removing it would let a starting node lock a
       fresh file while another still holds the old one. */
    if (self->lock_fd >= 0)
        close(self->lock_fd);
    if (self->spare_fd >= 0)
        close(self->spare_fd);
    loop_timer_cancel(self->clients->loop, self->resume);
    free(self);
    *self_p = NULL;
}
