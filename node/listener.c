/*  listener.c: the socket directory, the lock, bind, accept, and the
    client limit. */

#include "listener.h"
#include "path.h"

#include <czmq.h>
#include <errno.h>
#include <fcntl.h>
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
};

/* Says why, then closes: the HELLO would have had seq 1. */
static void s_refuse(listener_t *self, int fd)
{
    uint8_t head[WIRE_HEAD_MAX];
    const char *why = "too many clients";
    size_t hlen = wire_encode(head, WIRE_ERROR, WIRE_HELLO, 1, EUSERS, NULL, 0,
                              why, strlen(why), 0);
    if (write(fd, head, hlen) < 0) {
        /* Nothing to do: the client sees the connection close. */
    }
    close(fd);
    zsys_warning("refused a client: %u clients already", self->cfg->max_clients);
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
            if (errno == EMFILE || errno == ENFILE)
                zsys_warning("cannot accept a client: %s; retrying", strerror(errno));
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                zsys_warning("accept failed: %s, ignoring", strerror(errno));
            return;
        }
        if (directory_nclients(self->dir) >= self->cfg->max_clients) {
            s_refuse(self, cfd);
            continue;
        }
        client_t *c = client_new(self->clients, cfd, ++self->next_id);
        if (!c) {
            close(cfd);
            return;
        }
        snprintf(c->address, sizeof c->address, ":%llu@%s",
                 (unsigned long long) c->id, self->cfg->name);
        socklen_t len = sizeof c->cred;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0)
            c->cred = (struct ucred) { .pid = 0, .uid = (uid_t) -1, .gid = (gid_t) -1 };
        if (directory_add_client(self->dir, c) < 0 || session_start(self->sessions, c) < 0) {
            directory_client_gone(self->dir, c);
            client_free(c);
            continue;
        }
        if (self->cfg->verbose)
            zsys_info("client %s connected (pid %d, uid %u)", c->address,
                      (int) c->cred.pid, (unsigned) c->cred.uid);
    }
}

/* Makes the socket's directory (mode 0755: any local user may connect;
   the socket itself is 0666 and every client's credentials are known). */
static int s_make_dir(const char *path)
{
    char dir[sizeof ((struct sockaddr_un *) 0)->sun_path];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = 0;
    return path_mkdirs(dir, 0755);
}

static int s_listen(listener_t *self)
{
    const char *path = self->cfg->socket_path;
    int rc = s_make_dir(path);
    if (rc < 0) {
        zsys_error("cannot create the directory of %s: %s", path, strerror(-rc));
        return -1;
    }
    /* The lock decides who serves the path; the socket file alone cannot,
       as a crash leaves it behind. */
    snprintf(self->lock_path, sizeof self->lock_path, "%s.lock", path);
    self->lock_fd = open(self->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (self->lock_fd < 0) {
        zsys_error("cannot open %s: %s", self->lock_path, strerror(errno));
        return -1;
    }
    if (flock(self->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        zsys_error("another ipc-node already serves %s", path);
        close(self->lock_fd);
        self->lock_fd = -1;
        return -1;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    if (unlink(path) == 0)
        zsys_notice("removed a stale socket %s left by an earlier node", path);
    self->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (self->fd < 0 || bind(self->fd, (struct sockaddr *) &sa, sizeof sa) < 0 ||
        chmod(path, 0666) < 0 || listen(self->fd, SOMAXCONN) < 0) {
        zsys_error("cannot listen on %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int listener_serve(listener_t *self, sessions_t *sessions)
{
    self->sessions = sessions;
    return loop_fd_add(self->clients->loop, self->fd, LOOP_IN, s_accept, self);
}

/* Room for every client's descriptor, and a few of our own. */
static void s_raise_nofile(unsigned clients)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t want = (rlim_t) clients + 64;
    if (rl.rlim_cur >= want)
        return;
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < want)
        zsys_warning("open files limited to %llu: fewer than %u clients will fit",
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
    if (s_listen(self) < 0) {
        listener_destroy(&self);
        return NULL;
    }
    s_raise_nofile(self->cfg->max_clients);
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
    free(self);
    *self_p = NULL;
}
