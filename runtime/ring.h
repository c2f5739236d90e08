/* ring.h - the runtime's io_uring: setup, SQE acquisition, batched submit, completion reaping. */
#ifndef URT_RING_H
#define URT_RING_H

#include "runtime.h"

/* user_data of requests whose completion nobody waits for (async cancels). */
#define URT__UDATA_IGNORE 0ull
/* user_data of the send that urt_send_recv links before its recv: the op's address | this. */
#define URT__UDATA_LINKED 2ull

int  urt__ring_init(struct urt_runtime *rt, unsigned entries, bool quiet);
void urt__ring_exit(struct urt_runtime *rt);

/*
 * An SQE for an ordinary operation; never NULL. A full submission queue is flushed (and
 * completions reaped while the kernel pushes back) until there is room, leaving `sq_reserve`
 * slots for cancel requests. The operation counts as in flight from here on.
 */
struct io_uring_sqe *urt__sqe(struct urt_runtime *rt);
/* The same for a cancel request: may use the reserved slots, so it always finds room. */
struct io_uring_sqe *urt__sqe_cancel(struct urt_runtime *rt);

/* Cancels both halves of the urt_send_recv t waits in (see ring.c). */
void urt__pair_cancel(struct urt_runtime *rt, struct urt_task *t);

/* Flushes until n SQEs in a row are free: for a chain of linked requests. */
void urt__sq_room(struct urt_runtime *rt, unsigned n);

/*
 * Submits what is queued and reaps completions. wait: block until at least one completion or
 * until `timeout_ns` (relative; UINT64_MAX: no limit) passes.
 */
void urt__ring_poll(struct urt_runtime *rt, bool wait, uint64_t timeout_ns);

/* True when a non-blocking poll could do anything: SQEs queued or operations in flight. */
static inline bool urt__ring_busy(struct urt_runtime *rt)
{
    return rt->st.ops_inflight != 0;
}

#endif
