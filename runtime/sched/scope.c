/* SPDX-License-Identifier: MIT */
/* scope.c - cancel scopes (see scope.h and urt.h). */
#include <errno.h>

#include "base/compiler.h"
#include "sched/scope.h"
#include "sched/sched.h"
#include "sched/timer.h"

_Static_assert(sizeof(struct urt__scope) <= sizeof(urt_scope), "urt_scope is too small");
_Static_assert(_Alignof(struct urt__scope) <= _Alignof(urt_scope), "urt_scope is misaligned");

static inline uint64_t earliest(uint64_t a, uint64_t b)
{
    return !a ? b : !b ? a : a < b ? a : b;
}

/* The deadline t's calls obey becomes d. A timer left armed by an earlier wait stays when d is
   later (it follows d when it fires, as for urt_deadline); earlier, or none, it must go. */
static void set_deadline(struct urt_runtime *rt, struct urt_task *t, uint64_t d)
{
    t->deadline = d;
    if (t->heap_index && t->state == URT__RUNNING && (d == 0 || d < t->wake_at))
        urt__timer_disarm(&rt->timers, t);
}

void urt__scope_update(struct urt_runtime *rt, struct urt_task *t)
{
    uint64_t d = 0;
    bool cancelled = false, shielded = false;
    for (struct urt__scope *s = t->scope; s; s = s->parent) {
        d = earliest(d, s->deadline);
        cancelled |= s->cancelled;
        if (s->shield) {
            shielded = true;
            break;
        }
    }
    if (!shielded) {
        d = earliest(d, t->base_deadline);
        cancelled |= (t->flags & URT__CANCEL_CALLED) != 0;
    }
    if (d != t->deadline)
        set_deadline(rt, t, d);
    if (cancelled)
        t->flags |= URT__CANCELLED;
    else
        t->flags &= (uint16_t)~URT__CANCELLED;
}

/* The outermost scope, out to the nearest shield, that the failure is due to: trio hands a
   cancellation to the outermost of the scopes that caused it. None when it was urt_cancel or
   the task's own deadline. */
void urt__scope_blame(struct urt_task *t, int err)
{
    struct urt__scope *hit = NULL;
    bool shielded = false;
    for (struct urt__scope *s = t->scope; s; s = s->parent) {
        if (err == -ECANCELED ? s->cancelled : (s->deadline && s->deadline == t->deadline))
            hit = s;
        if (s->shield) {
            shielded = true;
            break;
        }
    }
    if (!shielded && err == -ETIMEDOUT && t->base_deadline == t->deadline)
        hit = NULL;   /* the task's own deadline, outermost of all */
    if (hit)
        hit->fired = true;
}

void urt_scope_enter(urt_scope *h, uint64_t deadline_abs_ns, unsigned flags)
{
    struct urt__scope *s = (struct urt__scope *)(void *)h;
    struct urt_task *t = urt__self();
    if (!s)
        return;
    if (!t) {
        s->magic = 0;
        return;
    }
    *s = (struct urt__scope){ .parent = t->scope, .task = t, .deadline = deadline_abs_ns,
                              .magic = URT__SCOPE_OPEN, .shield = (flags & URT_SHIELD) != 0 };
    t->scope = s;
    if (s->shield)
        urt__scope_update(urt__rt, t);
    else if (deadline_abs_ns && (!t->deadline || deadline_abs_ns < t->deadline))
        set_deadline(urt__rt, t, deadline_abs_ns);   /* a plain scope only narrows */
}

int urt_scope_exit(urt_scope *h)
{
    struct urt__scope *s = (struct urt__scope *)(void *)h;
    struct urt_task *t = urt__self();
    if (!t)
        return -EPERM;
    if (!s)
        return -EINVAL;
    int ret;
    if (likely(t->scope == s)) {
        ret = s->fired;
    } else {
        struct urt__scope *x = t->scope;
        while (x && x != s)
            x = x->parent;
        if (!x)
            return -EINVAL;   /* not open: nothing to close */
        for (x = t->scope; x != s; x = x->parent)
            x->magic = 0;     /* left out of order: the inner ones close with it */
        ret = -EINVAL;
    }
    t->scope = s->parent;
    s->magic = 0;
    if (s->deadline || s->shield || s->cancelled || ret < 0)
        urt__scope_update(urt__rt, t);
    return ret;
}

void urt_scope_cancel(urt_scope *h)
{
    struct urt__scope *s = (struct urt__scope *)(void *)h;
    struct urt_runtime *rt = urt__rt;
    if (!s || !urt__self() || s->magic != URT__SCOPE_OPEN || s->cancelled)
        return;
    bool foreign;
    struct urt_task *t = urt__task_of(rt, urt__handle(s->task), &foreign);
    if (!t || t->state == URT__DONE)
        return;   /* another runtime's, or a stale record */
    struct urt__scope *x = t->scope;
    while (x && x != s)
        x = x->parent;
    if (!x)
        return;
    s->cancelled = true;
    bool was = (t->flags & URT__CANCELLED) != 0;
    urt__scope_update(rt, t);
    if (!was && (t->flags & URT__CANCELLED) && t != rt->current)
        urt__interrupt(rt, t);
}
