/* SPDX-License-Identifier: MIT */
/* signal.c - waiting for a signal as a task, through a signalfd read on the ring. */
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "sched/sched.h"

int urt_signal_wait(const sigset_t *set)
{
    if (!urt__self())
        return -EPERM;
    if (!set)
        return -EINVAL;
    int err = urt__check_blocking(urt__self());
    if (err)
        return err;
    /* A signalfd only receives signals that are blocked; the default action would run instead. */
    pthread_sigmask(SIG_BLOCK, set, NULL);
    /* The SIGPIPEs urt's writes raise are then this call's to return, not urt's to discard. */
    if (sigismember(set, SIGPIPE) == 1)
        urt__sigpipe_wanted();
    int fd = signalfd(-1, set, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0)
        return -errno;
    struct signalfd_siginfo si;
    ssize_t n = urt_read(fd, &si, sizeof si, -1);
    close(fd);   /* the read has completed: nothing of ours is left on fd */
    if (n < 0)
        return (int)n;
    return n == (ssize_t)sizeof si ? (int)si.ssi_signo : -EIO;
}
