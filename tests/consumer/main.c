/* SPDX-License-Identifier: MIT */
/* A program that uses urt from outside its source tree (tests/consumer/run.sh builds it against an
   installed urt, by CMake and by pkg-config, and with add_subdirectory): one task sleeps 1 ms. */
#include <stdio.h>
#include <urt.h>

static int first_task(void *arg)
{
    (void)arg;
    int rc = urt_sleep(URT_MSEC(1));
    if (rc != 0) {
        fprintf(stderr, "urt_sleep: %d\n", rc);
        return 1;
    }
    return 0;
}

int main(void)
{
    int rc = urt_run(first_task, NULL, NULL);
    if (rc != 0) {
        fprintf(stderr, "urt_run: %d\n", rc);
        return 1;
    }
    puts("OK");
    return 0;
}
