/* SPDX-License-Identifier: MIT */
/* service.c - the runtime's list of registered services (see service.h). */
#include "sched/sched.h"
#include "sched/service.h"

void urt__service_add(struct urt_runtime *rt, struct urt__service *s,
                      const struct urt__service_ops *ops)
{
    /* At the head: runtime_end then runs the newest first, and a service registered by another
       (none do today) ends before it. */
    s->ops = ops;
    s->next = rt->services;
    rt->services = s;
}
