/* SPDX-License-Identifier: MIT */
/*
 * inbox.h - work that other threads hand to a runtime: spawn requests, wake-ups of tasks parked
 * on shared channels, a request to stop. Posting works from any thread; the owning runtime runs
 * the posts on its scheduler's stack. The inbox belongs to the set of runtimes
 * (urt_run_threads), not to the runtime, so that a post racing with the runtime's end meets a
 * closed inbox, never freed memory.
 */
#ifndef URT_SCHED_INBOX_H
#define URT_SCHED_INBOX_H

#include <stdbool.h>
#include <stdint.h>

#include "base/lock.h"
#include "backend/op.h"
#include "sched/service.h"

struct urt_runtime;
struct urt__post;

struct urt__post {
    struct urt__post *next;
    /* On the owner's scheduler stack; must free the post if it was allocated. */
    void (*run)(struct urt_runtime *rt, struct urt__post *p);
    /* The inbox closed with the post in it (its runtime ended): free it, do nothing else. */
    void (*drop)(struct urt__post *p);
};

struct urt__inbox {
    urt__lock           lock;
    struct urt__post   *head, *tail;
    bool                closed;     /* the runtime is ending or has ended: posts are refused   */
    bool                signalled;  /* a wake-up is on its way since the last drain           */
    int                 efd;        /* eventfd: the wake-up of posters that have no ring       */
    int                 ring_fd;    /* the owner's ring, for messages; -1 until it runs        */
    /* The owner's side only. */
    struct urt__service base;       /* registered with the owner: re-arm, idle count, end      */
    struct urt__op      efd_op;     /* the eventfd read, armed while the runtime runs          */
    uint64_t            efd_value;
    bool                efd_armed;
    /* Freed by the last of its holders: its set (urt_run_threads) or, for an inbox a runtime of
       urt_run made when a task first waited on a shared primitive, that runtime; and every
       waker still posting to it. */
    bool                own;        /* made by its runtime (not a set's)                       */
    int                 refs;       /* atomic                                                  */
    int                 spinning;   /* atomic: the owner polls the list itself, no wake-up     */
    uint64_t            posted;     /* atomic: posts ever made (orders posts against spinning) */
};

/* A message came to the runtime's ring (the backend's message callback): its inbox is due. */
void urt__inbox_message(void *rt);
/* Runs the posts of a due inbox (the scheduler, before it would sleep with one pending). */
void urt__inbox_run_due(struct urt_runtime *rt);

/* A new inbox with one reference (before its runtime starts); NULL with *err = -errno. */
struct urt__inbox *urt__inbox_new(int *err);
/* The owner starts taking posts (its scheduler runs them); posts made before are run too. */
void urt__inbox_open(struct urt_runtime *rt, struct urt__inbox *in);
/* The owner refuses posts from now on; the posts still in it are dropped. Idempotent. */
void urt__inbox_close(struct urt__inbox *in);
/* Hands p to the inbox's owner, from any thread: 0, or -ESHUTDOWN (closed: p untouched). */
int  urt__inbox_post(struct urt__inbox *in, struct urt__post *p);
/* The owner polls for posts itself for a while (spin_for_others in sched.c): posters skip the
   wake-up meanwhile. urt__inbox_spin_end returns with the posts that came run, so none waits. */
void urt__inbox_spin_begin(struct urt__inbox *in);
bool urt__inbox_spin_check(struct urt_runtime *rt, struct urt__inbox *in);
void urt__inbox_spin_end(struct urt_runtime *rt, struct urt__inbox *in);

/* The runtime's inbox, made now if it has none (a runtime of urt_run): NULL without memory. */
struct urt__inbox *urt__inbox_of(struct urt_runtime *rt);
/* Keeps an inbox from being freed while the caller posts to it (taken while the caller knows it
   lives, say under the lock of a primitive a task of its runtime waits on); the last release
   frees it. */
void urt__inbox_hold(struct urt__inbox *in);
void urt__inbox_release(struct urt__inbox *in);

#endif
