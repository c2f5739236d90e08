/* SPDX-License-Identifier: MIT */
/*
 * backend.h - what the scheduler asks of the kernel interface: queue operations, submit them in
 * batches, wait, and hand each completion to its operation's handler. backend/uring.c is the
 * io_uring implementation and the only code that knows io_uring; another backend (epoll, a test
 * double) would implement this header and nothing else.
 */
#ifndef URT_BACKEND_H
#define URT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "urt.h"
#include "backend/op.h"

struct urt__backend;

struct urt__backend_config {
    unsigned          entries;     /* submission queue size                                     */
    bool              quiet;       /* no message on stderr when the kernel refuses              */
    struct urt_stats *stats;       /* the counters it keeps: sqes, cqes, enters, ops in flight  */
    void             *ctx;         /* passed to every on_complete                               */
    /* Called when the submission queue is full while an operation is being queued: it must run
       urt__backend_poll(b, false, 0) (on the scheduler's stack) and return. */
    void            (*flush)(void *ctx);
    /* Called during the reap for each message from another ring (urt__backend_message). */
    void            (*message)(void *ctx);
};

/* 0, or -ENOSYS (no io_uring or too old), -EPERM (disabled), -ENOMEM (with what to raise). */
int  urt__backend_open(struct urt__backend **out, const struct urt__backend_config *cfg);
void urt__backend_close(struct urt__backend *b);

/*
 * Queues op; never fails. A full queue is flushed through cfg.flush until there is room, leaving
 * a few slots that only urgent operations (cancels) may take, so a cancel always finds room. The
 * operation counts as in flight until its last completion. Once a poll has failed for good, the
 * ring is dead: operations queued after that are dropped (the runtime is ending).
 */
void urt__backend_submit(struct urt__backend *b, struct urt__op *op);
/* Queues n operations that must reach the kernel in one batch (a chain tied by op->link). */
void urt__backend_submit_chain(struct urt__backend *b, struct urt__op *const *ops, unsigned n);
/* Queues an urgent cancel of target; its completion goes to report (NULL: ignored). */
void urt__backend_cancel(struct urt__backend *b, struct urt__op *target, struct urt__op *report);

/*
 * Submits what is queued and reaps completions, calling their handlers. wait: block until at
 * least one completion or until timeout_ns (relative; UINT64_MAX: no limit). Returns 0, or the
 * negative errno of an io_uring_enter failure that retrying cannot mend (say, a forked child
 * using its parent's ring): the ring is then dead, and later polls return -EBADFD.
 */
int  urt__backend_poll(struct urt__backend *b, bool wait, uint64_t timeout_ns);

/*
 * Messages between the runtimes of one process. Another runtime's backend sends one to this ring
 * with urt__backend_message(its own backend, urt__backend_ring_fd(this)); its arrival here calls
 * cfg.message(cfg.ctx) during the reap. A message carries nothing: not even an address, since it
 * reaches the kernel only at the sender's next enter and may arrive late, or at a ring that has
 * since taken the fd number - where it costs one look at an empty inbox. urt__backend_can_message
 * says whether the kernel has the means (IORING_OP_MSG_RING, 5.18); where not, runtimes signal
 * each other otherwise (an eventfd).
 */
int  urt__backend_ring_fd(const struct urt__backend *b);
bool urt__backend_can_message(const struct urt__backend *b);
/* report (NULL: none) gets the sender's own completion: 0, or why the message did not go. */
void urt__backend_message(struct urt__backend *b, int ring_fd, struct urt__op *report);

/* Flags of the setup that worked (IORING_SETUP_*), for urt_ring_flags. */
unsigned urt__backend_flags(const struct urt__backend *b);

#endif
