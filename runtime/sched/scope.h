/* SPDX-License-Identifier: MIT */
/*
 * scope.h - cancel scopes (urt_scope_*): what applies to a task's blocking calls.
 *
 * A task's open scopes form a list from the innermost (t->scope) out. What its calls obey is
 * kept ready in the task, so that a blocking call checks two fields as it always did:
 * t->deadline, the earliest deadline of the scopes out to the nearest shield (and, with no
 * shield, base_deadline, urt_deadline's), and URT__CANCELLED, whether one of them was cancelled
 * (or, with no shield, urt_cancel was called). Entering, leaving, cancelling and urt_deadline
 * compute both again, walking the few open scopes.
 */
#ifndef URT_SCHED_SCOPE_H
#define URT_SCHED_SCOPE_H

#include <stdbool.h>
#include <stdint.h>

struct urt_runtime;
struct urt_task;

/* The record behind a urt_scope, on the task's stack. */
struct urt__scope {
    struct urt__scope *parent;     /* the next scope out                                        */
    struct urt_task   *task;       /* whose                                                     */
    uint64_t           deadline;   /* its own, 0 = none                                         */
    uint32_t           magic;      /* URT__SCOPE_OPEN while open                                */
    bool               shield;
    bool               cancelled;  /* urt_scope_cancel was called                               */
    bool               fired;      /* its deadline or cancel ended or refused a call in it      */
};

#define URT__SCOPE_OPEN 0x5c09e0u

/* Computes again what t's calls obey, after a change to its scopes, base deadline or cancel. */
void urt__scope_update(struct urt_runtime *rt, struct urt_task *t);

/* A call of t's failed with err (-ECANCELED or -ETIMEDOUT): marks the scope that caused it as
   fired. Only for a task with open scopes. */
void urt__scope_blame(struct urt_task *t, int err);

#endif
