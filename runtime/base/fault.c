/* SPDX-License-Identifier: MIT */
/* fault.c - the fault injector (see fault.h); compiled to nothing unless URT_FAULT_INJECTION. */
#include "base/fault.h"

#ifdef URT_FAULT_INJECTION
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static __thread uint64_t state;
static __thread uint32_t per_million;
static __thread bool enabled[URT__FAULT_SITES];

void urt__fault_init(void)
{
    const char *spec = getenv("URT_FAULTS");
    per_million = 0;
    if (!spec || !*spec)
        return;
    char *end;
    state = strtoull(spec, &end, 10) * 0x9e3779b97f4a7c15ull + 1;
    if (*end == ':')
        per_million = (uint32_t)strtoul(end + 1, &end, 10);
    const char *sites = (*end == ':') ? end + 1 : "sabgiq";
    static const char letters[URT__FAULT_SITES] = { 's', 'a', 'b', 'g', 'i', 'q' };
    for (int i = 0; i < URT__FAULT_SITES; i++)
        enabled[i] = strchr(sites, letters[i]) != NULL;
}

bool urt__fault(enum urt__fault_site site)
{
    if (!per_million || !enabled[site])
        return false;
    state ^= state << 13;   /* xorshift64 */
    state ^= state >> 7;
    state ^= state << 17;
    return state % 1000000u < per_million;
}
#endif
