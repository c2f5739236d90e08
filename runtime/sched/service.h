/* SPDX-License-Identifier: MIT */
/*
 * service.h - how services (the listener, the helper-thread pool, urt_send_recv's pairs...) plug
 * into a runtime without the scheduler naming them. A service registers itself on first use; the
 * scheduler calls its hooks at fixed points, on the scheduler's own stack.
 */
#ifndef URT_SCHED_SERVICE_H
#define URT_SCHED_SERVICE_H

#include <stdint.h>

struct urt_runtime;
struct urt__service;

struct urt__service_ops {
    const char *name;
    /* After every reap of completions: queue what completion handlers could not (they may not
       queue operations while the reap runs). */
    void     (*post_reap)(struct urt_runtime *rt, struct urt__service *s);
    /* urt_close(fd) is closing fd, before its cancel goes to the kernel. Runs on the closing
       task's stack (which may be a compact one): a few loads and stores, no call into libc. */
    void     (*fd_closed)(struct urt_runtime *rt, struct urt__service *s, int fd);
    /* How many of the operations in flight are this service's own and can wake no task (a
       multishot accept nobody waits on): the deadlock check does not count them as hope. */
    uint64_t (*idle_ops)(const struct urt_runtime *rt, const struct urt__service *s);
    /* Every task has ended: end its kernel requests, wait for them (urt__sched_drain) and free
       itself. Services end in the reverse order of their registration. */
    void     (*runtime_end)(struct urt_runtime *rt, struct urt__service *s);
};

struct urt__service {
    const struct urt__service_ops *ops;
    struct urt__service           *next;
};

/* Adds s (which lives as long as the runtime, or until the service's own runtime_end). */
void urt__service_add(struct urt_runtime *rt, struct urt__service *s,
                      const struct urt__service_ops *ops);
/* The registered service with these ops, or NULL (a few of them at most: a short walk). */
static inline struct urt__service *urt__service_find(struct urt__service *list,
                                                     const struct urt__service_ops *ops)
{
    for (struct urt__service *s = list; s; s = s->next)
        if (s->ops == ops)
            return s;
    return NULL;
}

#endif
