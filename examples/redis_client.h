/* SPDX-License-Identifier: MIT */
/*
 * redis_client.h - a Redis client for urt tasks (RESP2): copy redis_client.c and this file into
 * your program.
 *
 * Commands are argument vectors, binary-safe. A connection belongs to one task at a time; a pool
 * hands connections to many tasks (a task waits in rc_pool_get while all are lent). Pipelining:
 * rc_append any number of commands, then rc_read one reply each, in order (rc_read sends what is
 * queued first). Every call returns 0 or a negative errno, never aborts:
 *   -EPROTO    the server sent something that is not RESP2 (or over the limits below): the
 *              connection is unusable, close it;
 *   -EPIPE, -ECONNRESET, -ETIMEDOUT, -ECANCELED ... from the socket, the task's deadline or
 *              cancel: the connection may hold a half-read reply, close it;
 *   -ENOMEM.
 * A Redis error reply (-ERR ...) is not a failure of the call: it is a reply of type RC_ERROR.
 */
#ifndef REDIS_CLIENT_H
#define REDIS_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

enum rc_type {
    RC_STATUS,    /* +OK                         str, len   */
    RC_ERROR,     /* -ERR message                str, len   */
    RC_INTEGER,   /* :42                         integer    */
    RC_BULK,      /* $3 abc (binary-safe)        str, len   */
    RC_NIL,       /* $-1 or *-1                             */
    RC_ARRAY,     /* *2 ...                      elem, n    */
};

typedef struct rc_reply {
    enum rc_type     type;
    long long        integer;
    char            *str;    /* NUL-terminated after len bytes, for convenience */
    size_t           len;
    struct rc_reply *elem;
    size_t           n;
} rc_reply;

/* Limits that keep a broken or hostile server from taking all memory or stack. */
#define RC_MAX_BULK  (512u * 1024 * 1024)   /* Redis's own proto-max-bulk-len */
#define RC_MAX_ELEMS (1u << 24)
#define RC_MAX_DEPTH 32
#define RC_MAX_REPLY (1u << 30)            /* bytes of one reply, all of it */

typedef struct rc_conn rc_conn;

/* (T) Connects to host:port (a name or a numeric address). 0 and *out, or a negative errno:
   -EHOSTUNREACH when the name does not resolve, -ECONNREFUSED when nothing listens there. */
int rc_connect(const char *host, int port, rc_conn **out);
/* (T) Closes c (NULL: nothing). Replies not read are dropped. */
void rc_close(rc_conn *c);

/* Queues one command (argc >= 1 arguments; argvlen NULL: each is a C string). Nothing is sent
   until rc_read or rc_flush. -EINVAL for argc < 1, -ENOMEM. */
int rc_append(rc_conn *c, int argc, const char *const *argv, const size_t *argvlen);
/* (T) Sends what is queued. */
int rc_flush(rc_conn *c);
/* (T) The next reply, in the order of the commands: sends what is queued, then reads. The reply
   is the caller's, to give to rc_reply_free. -EINVAL when no command awaits a reply. */
int rc_read(rc_conn *c, rc_reply **out);
/* (T) One command and its reply: rc_append and rc_read. */
int rc_command(rc_conn *c, rc_reply **out, int argc, const char *const *argv,
               const size_t *argvlen);
void rc_reply_free(rc_reply *r);

/* A pool of up to size connections to one server, shared by the tasks of one runtime. Made
   inside a task; connections are made when first needed. */
typedef struct rc_pool rc_pool;
rc_pool *rc_pool_new(const char *host, int port, int size);
/* (T) A connection of the pool: an idle one, a new one while fewer than size exist, else the
   first to come back (FIFO among waiting tasks). Honours the task's deadline and cancel. */
int rc_pool_get(rc_pool *p, rc_conn **out);
/* (T) Gives c back; broken: it failed (see above), close it instead of keeping it. */
void rc_pool_put(rc_pool *p, rc_conn *c, bool broken);
/* Closes the idle connections and frees p: every lent one must be back and no task waiting
   in rc_pool_get, else -EBUSY and nothing is freed. Also after urt_run has returned. */
int rc_pool_free(rc_pool *p);

#endif
