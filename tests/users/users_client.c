/*  users_client.c: a libipcnet client driven line by line, for
    test_users.sh.

    usage: users_client SOCKET LABEL

    Connects to SOCKET as LABEL ("-" for the default socket, as
    ipcnet_connect(NULL) finds it), then reads commands from standard
    input, one a line, words separated by blanks, and answers each on
    standard output with lines that start with the command's number (0 for
    the connection, then 1, 2, ...):

      N ok [WHAT]                  it worked
      N err RC NAME | WHY          it failed: the negative errno, its name,
                                   and the node's words (ipcnet_last_error)
      N row FIELDS                 a row of a listing (tabs kept), before ok

    Commands (TEXT is one word; the test needs no blanks in payloads):

      bind NAME / unbind NAME
      send DEST TEXT               with IPCNET_CONFIRM: the node's answer
      request DEST TEXT MS         waits for the reply: ok reply <msg>
      arequest DEST TEXT MS        ok id ID
      recv MS                      ok <msg>, or err -110 on a timeout
      reply TEXT                   to the last REQUEST received
      replyto ADDRESS ID TEXT      as any client could try
      subscribe PATTERN / publish TOPIC TEXT (IPCNET_CONFIRM) / watch PATTERN
      query services|clients|peers rows, then ok
      address                      ok :N@node
      quit

    A message is printed as
      KIND name=NAME from=SOURCE id=ID uid=UID user=USER node=NODE
      node_id=ID event=EV error=ERR data=DATA
    Errors that arrive as messages (IPCNET_MSG_ERROR) are messages too
    (kind error). Every wait is bounded by its MS; the process exits when
    standard input closes. */

#include "ipcnet.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static unsigned s_seq;
static char s_req_source[128];
static uint32_t s_req_id;
static int s_have_req;

static const char *s_errname(int rc)
{
    switch (-rc) {
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ETIMEDOUT: return "ETIMEDOUT";
    case EEXIST: return "EEXIST";
    case EPERM: return "EPERM";
    case ECONNRESET: return "ECONNRESET";
    case EHOSTUNREACH: return "EHOSTUNREACH";
    case ENOBUFS: return "ENOBUFS";
    case EINVAL: return "EINVAL";
    case ENOTCONN: return "ENOTCONN";
    default: return "E?";
    }
}

static void s_err(ipcnet_t *c, int rc)
{
    printf("%u err %d %s | %s\n", s_seq, rc, s_errname(rc), c ? ipcnet_last_error(c) : "");
}

/* Messages taken while looking for the answer to a reply (see
   s_reply_result), handed out by the next recv commands. */
#define QUEUE_MAX 64
static struct {
    char text[1024];
    int request;
    char source[128];
    uint32_t id;
} s_queue[QUEUE_MAX];
static int s_qhead, s_qlen;

static void s_format_msg(char *buf, size_t size, const ipcnet_msg_t *m)
{
    static const char *const kinds[] = { "?", "send", "request", "reply", "publish", "event",
                                         "error" };
    int k = m->kind >= 1 && m->kind <= 6 ? (int) m->kind : 0;
    snprintf(buf, size, "%s name=%s from=%s id=%u uid=%u user=%s node=%s node_id=%s event=%d "
             "error=%d data=%.*s", kinds[k], m->name ? m->name : "", m->source ? m->source : "",
             (unsigned) m->id, (unsigned) m->uid, m->user ? m->user : "",
             m->node ? m->node : "", m->node_id ? m->node_id : "", m->event, m->error,
             (int) m->size, m->data ? (const char *) m->data : "");
}

static void s_take_request(const ipcnet_msg_t *m)
{
    if (m->kind == IPCNET_MSG_REQUEST) {
        snprintf(s_req_source, sizeof s_req_source, "%s", m->source);
        s_req_id = m->id;
        s_have_req = 1;
    }
}

/* What the node said of a reply just sent: REPLY is not answered, but an
   ERROR comes for one it refused. A query after it is answered after the
   reply was handled (one connection's commands are handled in order), so
   the ERROR, if any, has come by then; anything else that came is kept
   for recv. */
static void s_reply_result(ipcnet_t *c)
{
    char *text = NULL;
    int rc = ipcnet_query(c, IPCNET_Q_STATS, &text);
    free(text);
    if (rc < 0) {
        s_err(c, rc);
        return;
    }
    ipcnet_msg_t m;
    int refused = 0;
    while (ipcnet_recv(c, &m, 0) == 0) {
        if (!refused && m.kind == IPCNET_MSG_ERROR) {
            printf("%u err %d %s | %.*s\n", s_seq, m.error, s_errname(m.error), (int) m.size,
                   (const char *) m.data);
            refused = 1;
        } else if (s_qlen < QUEUE_MAX) {
            int at = (s_qhead + s_qlen++) % QUEUE_MAX;
            s_format_msg(s_queue[at].text, sizeof s_queue[at].text, &m);
            s_queue[at].request = m.kind == IPCNET_MSG_REQUEST;
            snprintf(s_queue[at].source, sizeof s_queue[at].source, "%s", m.source ? m.source : "");
            s_queue[at].id = m.id;
        }
    }
    if (!refused)
        printf("%u ok\n", s_seq);
}

static void s_print_msg(const ipcnet_msg_t *m)
{
    char buf[1024];
    s_format_msg(buf, sizeof buf, m);
    fputs(buf, stdout);
}

static int s_ms(const char *s)
{
    return s ? atoi(s) : 1000;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: users_client SOCKET LABEL\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    ipcnet_t *c = NULL;
    int rc = ipcnet_connect(&c, strcmp(argv[1], "-") == 0 ? NULL : argv[1], argv[2], 0);
    if (rc < 0) {
        s_err(NULL, rc);
        return 1;
    }
    printf("0 ok %s\n", ipcnet_address(c));
    char line[4096];
    while (fgets(line, sizeof line, stdin)) {
        s_seq++;
        char *save = NULL, *cmd = strtok_r(line, " \t\r\n", &save);
        char *a1 = strtok_r(NULL, " \t\r\n", &save);
        char *a2 = strtok_r(NULL, " \t\r\n", &save);
        char *a3 = strtok_r(NULL, " \t\r\n", &save);
        const char *t2 = a2 ? a2 : "";
        ipcnet_msg_t m;
        if (!cmd) {
            printf("%u err -22 EINVAL | empty command\n", s_seq);
        } else if (strcmp(cmd, "quit") == 0) {
            printf("%u ok\n", s_seq);
            break;
        } else if (strcmp(cmd, "address") == 0) {
            printf("%u ok %s\n", s_seq, ipcnet_address(c));
        } else if (!a1) {
            printf("%u err -22 EINVAL | %s needs an argument\n", s_seq, cmd);
        } else if (strcmp(cmd, "bind") == 0 || strcmp(cmd, "unbind") == 0 ||
                   strcmp(cmd, "subscribe") == 0 || strcmp(cmd, "watch") == 0) {
            rc = cmd[0] == 'b' ? ipcnet_bind(c, a1) : cmd[0] == 'u' ? ipcnet_unbind(c, a1)
               : cmd[0] == 's' ? ipcnet_subscribe(c, a1) : ipcnet_watch(c, a1);
            rc < 0 ? s_err(c, rc) : (void) printf("%u ok\n", s_seq);
        } else if (strcmp(cmd, "send") == 0 || strcmp(cmd, "publish") == 0) {
            rc = cmd[0] == 's' ? ipcnet_send(c, a1, t2, strlen(t2), IPCNET_CONFIRM)
                               : ipcnet_publish(c, a1, t2, strlen(t2), IPCNET_CONFIRM);
            rc < 0 ? s_err(c, rc) : (void) printf("%u ok\n", s_seq);
        } else if (strcmp(cmd, "request") == 0) {
            rc = ipcnet_request(c, a1, t2, strlen(t2), s_ms(a3), &m);
            if (rc < 0)
                s_err(c, rc);
            else {
                printf("%u ok reply ", s_seq);
                s_print_msg(&m);
                putchar('\n');
            }
        } else if (strcmp(cmd, "arequest") == 0) {
            uint32_t id;
            rc = ipcnet_request_async(c, a1, t2, strlen(t2), s_ms(a3), &id);
            rc < 0 ? s_err(c, rc) : (void) printf("%u ok id %u\n", s_seq, (unsigned) id);
        } else if (strcmp(cmd, "recv") == 0) {
            if (s_qlen > 0) {
                int at = s_qhead;
                s_qhead = (s_qhead + 1) % QUEUE_MAX;
                s_qlen--;
                if (s_queue[at].request) {
                    snprintf(s_req_source, sizeof s_req_source, "%s", s_queue[at].source);
                    s_req_id = s_queue[at].id;
                    s_have_req = 1;
                }
                printf("%u ok %s\n", s_seq, s_queue[at].text);
            } else if ((rc = ipcnet_recv(c, &m, s_ms(a1))) < 0)
                s_err(c, rc);
            else {
                s_take_request(&m);
                printf("%u ok ", s_seq);
                s_print_msg(&m);
                putchar('\n');
            }
        } else if (strcmp(cmd, "reply") == 0) {
            if (!s_have_req)
                printf("%u err -22 EINVAL | no request received\n", s_seq);
            else if ((rc = ipcnet_reply_to(c, s_req_source, s_req_id, a1, strlen(a1))) < 0)
                s_err(c, rc);
            else
                s_reply_result(c);
        } else if (strcmp(cmd, "replyto") == 0) {
            const char *text = a3 ? a3 : "";
            rc = ipcnet_reply_to(c, a1, (uint32_t) strtoul(t2, NULL, 10), text, strlen(text));
            if (rc < 0)
                s_err(c, rc);
            else
                s_reply_result(c);
        } else if (strcmp(cmd, "query") == 0) {
            int what = strcmp(a1, "services") == 0 ? IPCNET_Q_SERVICES
                     : strcmp(a1, "clients") == 0 ? IPCNET_Q_CLIENTS : IPCNET_Q_PEERS;
            char *text = NULL;
            rc = ipcnet_query(c, what, &text);
            if (rc < 0)
                s_err(c, rc);
            else {
                for (char *l = text, *next; l && *l; l = next) {
                    next = strchr(l, '\n');
                    if (next)
                        *next++ = 0;
                    printf("%u row %s\n", s_seq, l);
                }
                printf("%u ok\n", s_seq);
            }
            free(text);
        } else {
            printf("%u err -22 EINVAL | unknown command %s\n", s_seq, cmd);
        }
    }
    ipcnet_close(&c);
    return 0;
}
