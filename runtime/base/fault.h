/* SPDX-License-Identifier: MIT */
/*
 * fault.h - fault injection, for walking the error paths in tests.
 *
 * Built in only with -DURT_FAULT_INJECTION=ON (CMake). Then the environment variable
 * URT_FAULTS="SEED:PER_MILLION[:SITES]" read by urt_run makes each named site fail with that
 * probability, from a generator seeded with SEED; SITES is a set of letters (default all):
 *   s  stack grants fail (spawn: ENOMEM)           a  the runtime's own allocations fail
 *   b  io_uring_enter returns -EBUSY               g  io_uring_enter returns -EAGAIN
 *   i  io_uring_enter returns -EINTR               q  the SQ looks full (a flush is forced)
 * In ordinary builds every site compiles to "no fault".
 */
#ifndef URT_FAULT_H
#define URT_FAULT_H

#include <stdbool.h>

enum urt__fault_site {
    URT__FAULT_STACK,
    URT__FAULT_ALLOC,
    URT__FAULT_ENTER_BUSY,
    URT__FAULT_ENTER_AGAIN,
    URT__FAULT_ENTER_INTR,
    URT__FAULT_SQ_FULL,
    URT__FAULT_SITES,
};

#ifdef URT_FAULT_INJECTION
void urt__fault_init(void);
bool urt__fault(enum urt__fault_site site);
#else
static inline void urt__fault_init(void) {}
static inline bool urt__fault(enum urt__fault_site site) { (void)site; return false; }
#endif

/* The runtime's own allocations, failing on demand under fault injection. */
#include <stdlib.h>
static inline void *urt__malloc(size_t n)
{
    return urt__fault(URT__FAULT_ALLOC) ? NULL : malloc(n);
}
static inline void *urt__calloc(size_t n, size_t size)
{
    return urt__fault(URT__FAULT_ALLOC) ? NULL : calloc(n, size);
}
static inline void *urt__realloc(void *p, size_t n)
{
    return urt__fault(URT__FAULT_ALLOC) ? NULL : realloc(p, n);
}

#endif
