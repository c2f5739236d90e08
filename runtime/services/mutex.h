/* SPDX-License-Identifier: MIT */
/* mutex.h - the mutex's record, for the condition variable that releases and retakes it. */
#ifndef URT_SERVICES_MUTEX_H
#define URT_SERVICES_MUTEX_H

#include "services/sync.h"

struct urt_mutex {
    struct urt__sync s;
    struct urt_task *holder;   /* NULL when free; an unlock hands it to the oldest waiter */
};

/* The holder (the calling task) lets m go, to the oldest waiter if any. */
void urt__mutex_release(struct urt_runtime *rt, struct urt_mutex *m);
/* Takes m back for the calling task, waiting as long as it takes: no cancel or deadline ends
   it (a condition wait returns holding the mutex, on error too). 0, or -EDEADLK when the
   runtime found its tasks deadlocked and woke this one: then m is not held. */
int urt__mutex_retake(struct urt_runtime *rt, struct urt_mutex *m);

#endif
