/*
 * test_chan.c - channels: buffered and rendezvous ordering, try_ variants, close and free,
 * cancellation and deadlines of waiting senders and receivers, bad arguments.
 */
#include <pthread.h>
#include <semaphore.h>

#include "urt_test.h"

/* ---- ordering ------------------------------------------------------------------------------ */

#define NMSG 2000

struct prod {
    urt_chan *c;
    int base, n;
    int send_err;
};

static int producer(void *arg)
{
    struct prod *p = arg;
    for (int i = 0; i < p->n; i++) {
        int v = p->base + i;
        int r = urt_chan_send(p->c, &v);
        if (r) {
            p->send_err = r;
            break;
        }
    }
    return 0;
}

struct order_res {
    int got[3 * NMSG];
    int n;
    int bad_order;
    int recv_err;
};

static void consume(urt_chan *c, struct order_res *r, int total)
{
    int last[3] = { -1, -1, -1 };
    for (int i = 0; i < total; i++) {
        int v;
        int e = urt_chan_recv(c, &v);
        if (e) {
            r->recv_err = e;
            return;
        }
        r->got[r->n++] = v;
        int who = v / NMSG;
        if (who < 0 || who > 2 || v <= last[who])
            r->bad_order++;   /* each producer's elements arrive in the order sent */
        else
            last[who] = v;
    }
}

static int fifo_main(void *arg)
{
    struct order_res *r = arg;
    for (size_t cap = 0; cap <= 7; cap += 7) {
        urt_chan *c = urt_chan_new(sizeof(int), cap);
        /* one producer: exact FIFO */
        struct prod p = { c, 0, NMSG, 0 };
        urt_task *t = urt_spawn(producer, &p);
        r->n = 0;
        consume(c, r, NMSG);
        EXPECT_EQ(urt_join(t), 0);
        EXPECT_EQ(p.send_err, 0);
        for (int i = 0; i < NMSG; i++)
            if (r->got[i] != i)
                r->bad_order++;
        /* three producers: per-producer FIFO, nothing lost */
        struct prod ps[3];
        urt_task *ts[3];
        for (int k = 0; k < 3; k++) {
            ps[k] = (struct prod){ c, k * NMSG, NMSG, 0 };
            ts[k] = urt_spawn(producer, &ps[k]);
        }
        r->n = 0;
        consume(c, r, 3 * NMSG);
        for (int k = 0; k < 3; k++) {
            EXPECT_EQ(urt_join(ts[k]), 0);
            EXPECT_EQ(ps[k].send_err, 0);
        }
        EXPECT_EQ(r->n, 3 * NMSG);
        int v;
        EXPECT_EQ(urt_chan_try_recv(c, &v), -EAGAIN);
        urt_chan_free(c);
    }
    return 0;
}

UT_TEST(buffered_and_rendezvous_fifo)
{
    static struct order_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(fifo_main, &r, NULL), 0);
    assert_int_equal(r.recv_err, 0);
    assert_int_equal(r.bad_order, 0);
}

/* A full buffered channel: blocked senders' elements keep their place after the buffered ones. */
struct full_res {
    int got[10];
    int sender_done_early;
};

static int send_1_to_10(void *arg)
{
    urt_chan *c = arg;
    for (int v = 1; v <= 10; v++)
        if (urt_chan_send(c, &v))
            return -1;
    return 0;
}

static int full_main(void *arg)
{
    struct full_res *r = arg;
    urt_chan *c = urt_chan_new(sizeof(int), 3);
    urt_task *t = urt_spawn(send_1_to_10, c);
    urt_yield();
    urt_yield();
    /* the sender has filled the buffer and waits with its 4th element */
    int v;
    for (int i = 0; i < 10; i++) {
        EXPECT_EQ(urt_chan_recv(c, &v), 0);
        r->got[i] = v;
    }
    EXPECT_EQ(urt_join(t), 0);
    urt_chan_free(c);
    return 0;
}

UT_TEST(full_buffer_keeps_fifo_with_waiting_sender)
{
    struct full_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(full_main, &r, NULL), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(r.got[i], i + 1);
}

/* Rendezvous: a send does not complete until a receiver has taken the element. */
struct rdv {
    urt_chan *c;
    int sent, send_res;
    int sent_before_recv;
    int got;
};

static int rdv_sender(void *arg)
{
    struct rdv *r = arg;
    int v = 4242;
    r->send_res = urt_chan_send(r->c, &v);
    r->sent = 1;
    return 0;
}

static int rdv_main(void *arg)
{
    struct rdv *r = arg;
    r->c = urt_chan_new(sizeof(int), 0);
    urt_task *t = urt_spawn(rdv_sender, r);
    for (int i = 0; i < 5; i++)
        urt_yield();
    EXPECT_EQ(urt_sleep(URT_MSEC(2)), 0);
    r->sent_before_recv = r->sent;
    EXPECT_EQ(urt_chan_recv(r->c, &r->got), 0);
    EXPECT_EQ(urt_join(t), 0);
    urt_chan_free(r->c);
    return 0;
}

UT_TEST(rendezvous_send_waits_for_receiver)
{
    struct rdv r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(rdv_main, &r, NULL), 0);
    assert_int_equal(r.sent_before_recv, 0);
    assert_int_equal(r.sent, 1);
    assert_int_equal(r.send_res, 0);
    assert_int_equal(r.got, 4242);
}

/* Larger elements are copied whole. */
struct big {
    char text[100];
    uint64_t n;
};

static int big_main(void *arg)
{
    struct big *out = arg;
    urt_chan *c = urt_chan_new(sizeof(struct big), 2);
    struct big b;
    memset(&b, 'q', sizeof b);
    snprintf(b.text, sizeof b.text, "an element of %zu bytes", sizeof b);
    b.n = 0x0102030405060708ull;
    EXPECT_EQ(urt_chan_send(c, &b), 0);
    memset(&b, 0, sizeof b);   /* the channel has its own copy */
    EXPECT_EQ(urt_chan_recv(c, out), 0);
    urt_chan_free(c);
    return 0;
}

UT_TEST(elements_copied_whole)
{
    struct big b;
    memset(&b, 0, sizeof b);
    assert_int_equal(urt_run(big_main, &b, NULL), 0);
    assert_string_equal(b.text, "an element of 112 bytes");
    assert_int_equal(b.n, 0x0102030405060708ull);
}

/* ---- try_send / try_recv ------------------------------------------------------------------- */

struct try_res {
    int rdv_send_empty, rdv_recv_empty;
    int buf_send[3], buf_send_full;
    int buf_recv[3], buf_recv_empty;
    int vals[3];
    int rdv_try_recv_with_sender, rdv_try_recv_val;
    int rdv_try_send_with_receiver, rdv_receiver_got;
};

static int blocking_sender_77(void *arg)
{
    int v = 77;
    return urt_chan_send(arg, &v);
}

struct recv_into {
    urt_chan *c;
    int v;
    int res;
};

static int blocking_receiver(void *arg)
{
    struct recv_into *r = arg;
    r->res = urt_chan_recv(r->c, &r->v);
    return 0;
}

static int try_main(void *arg)
{
    struct try_res *r = arg;
    int v = 1;
    urt_chan *z = urt_chan_new(sizeof(int), 0);
    r->rdv_send_empty = urt_chan_try_send(z, &v);
    r->rdv_recv_empty = urt_chan_try_recv(z, &v);

    urt_chan *b = urt_chan_new(sizeof(int), 3);
    for (int i = 0; i < 3; i++) {
        v = 10 + i;
        r->buf_send[i] = urt_chan_try_send(b, &v);
    }
    r->buf_send_full = urt_chan_try_send(b, &v);
    for (int i = 0; i < 3; i++)
        r->buf_recv[i] = urt_chan_try_recv(b, &r->vals[i]);
    r->buf_recv_empty = urt_chan_try_recv(b, &v);

    /* try_recv takes from a waiting sender; try_send hands to a waiting receiver */
    urt_task *s = urt_spawn(blocking_sender_77, z);
    urt_yield();
    r->rdv_try_recv_with_sender = urt_chan_try_recv(z, &r->rdv_try_recv_val);
    EXPECT_EQ(urt_join(s), 0);
    struct recv_into ri = { z, 0, 99 };
    urt_task *rt = urt_spawn(blocking_receiver, &ri);
    urt_yield();
    v = 88;
    r->rdv_try_send_with_receiver = urt_chan_try_send(z, &v);
    EXPECT_EQ(urt_join(rt), 0);
    EXPECT_EQ(ri.res, 0);
    r->rdv_receiver_got = ri.v;
    urt_chan_free(z);
    urt_chan_free(b);
    return 0;
}

UT_TEST(try_send_try_recv)
{
    struct try_res r;
    memset(&r, 0x55, sizeof r);
    assert_int_equal(urt_run(try_main, &r, NULL), 0);
    assert_int_equal(r.rdv_send_empty, -EAGAIN);
    assert_int_equal(r.rdv_recv_empty, -EAGAIN);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r.buf_send[i], 0);
        assert_int_equal(r.buf_recv[i], 0);
        assert_int_equal(r.vals[i], 10 + i);
    }
    assert_int_equal(r.buf_send_full, -EAGAIN);
    assert_int_equal(r.buf_recv_empty, -EAGAIN);
    assert_int_equal(r.rdv_try_recv_with_sender, 0);
    assert_int_equal(r.rdv_try_recv_val, 77);
    assert_int_equal(r.rdv_try_send_with_receiver, 0);
    assert_int_equal(r.rdv_receiver_got, 88);
}

/* ---- close and free ------------------------------------------------------------------------- */

struct close_res {
    int waiting_sender, waiting_receiver;
    int send_after, try_send_after;
    int drained[2], drained_vals[2], after_drain, try_after_drain;
    int second_close_ok;
    int freed_waiter;
};

static int waiting_send(void *arg)
{
    int v = 5;
    return urt_chan_send(arg, &v);
}

static int waiting_recv(void *arg)
{
    int v;
    return urt_chan_recv(arg, &v);
}

static int close_main(void *arg)
{
    struct close_res *r = arg;
    /* a sender blocked on a full channel, then close: it gets -EPIPE, the buffer stays */
    urt_chan *c = urt_chan_new(sizeof(int), 2);
    int v = 1;
    urt_chan_send(c, &v);
    v = 2;
    urt_chan_send(c, &v);
    urt_task *s = urt_spawn(waiting_send, c);
    urt_yield();
    urt_chan_close(c);
    r->waiting_sender = urt_join(s);
    v = 3;
    r->send_after = urt_chan_send(c, &v);
    r->try_send_after = urt_chan_try_send(c, &v);
    for (int i = 0; i < 2; i++)
        r->drained[i] = urt_chan_recv(c, &r->drained_vals[i]);
    r->after_drain = urt_chan_recv(c, &v);
    r->try_after_drain = urt_chan_try_recv(c, &v);
    urt_chan_close(c);   /* twice: nothing happens */
    r->second_close_ok = urt_chan_recv(c, &v) == -EPIPE;
    urt_chan_free(c);

    /* a receiver blocked on an empty channel, then close */
    c = urt_chan_new(sizeof(int), 0);
    urt_task *rv = urt_spawn(waiting_recv, c);
    urt_yield();
    urt_chan_close(c);
    r->waiting_receiver = urt_join(rv);
    urt_chan_free(c);

    /* free with a waiter: it is woken with -EPIPE and touches the freed channel no more */
    c = urt_chan_new(sizeof(int), 1);
    rv = urt_spawn(waiting_recv, c);
    urt_yield();
    urt_chan_free(c);
    r->freed_waiter = urt_join(rv);
    return 0;
}

UT_TEST(close_semantics_epipe_and_drain)
{
    struct close_res r;
    memset(&r, 0x55, sizeof r);
    assert_int_equal(urt_run(close_main, &r, NULL), 0);
    assert_int_equal(r.waiting_sender, -EPIPE);
    assert_int_equal(r.send_after, -EPIPE);
    assert_int_equal(r.try_send_after, -EPIPE);
    assert_int_equal(r.drained[0], 0);
    assert_int_equal(r.drained[1], 0);
    assert_int_equal(r.drained_vals[0], 1);
    assert_int_equal(r.drained_vals[1], 2);
    assert_int_equal(r.after_drain, -EPIPE);
    assert_int_equal(r.try_after_drain, -EPIPE);
    assert_int_equal(r.second_close_ok, 1);
    assert_int_equal(r.waiting_receiver, -EPIPE);
    assert_int_equal(r.freed_waiter, -EPIPE);
}

/* Many waiters, all woken by one close. */
static int many_close_main(void *arg)
{
    int *res = arg;
    urt_chan *s = urt_chan_new(sizeof(int), 0);
    urt_chan *r = urt_chan_new(sizeof(int), 0);
    urt_task *t[40];
    for (int i = 0; i < 20; i++) {
        t[i] = urt_spawn(waiting_send, s);
        t[20 + i] = urt_spawn(waiting_recv, r);
    }
    urt_yield();
    urt_chan_close(s);
    urt_chan_close(r);
    for (int i = 0; i < 40; i++)
        res[i] = urt_join(t[i]);
    urt_chan_free(s);
    urt_chan_free(r);
    return 0;
}

UT_TEST(close_wakes_every_waiter)
{
    int res[40];
    memset(res, 0, sizeof res);
    assert_int_equal(urt_run(many_close_main, res, NULL), 0);
    for (int i = 0; i < 40; i++)
        assert_int_equal(res[i], -EPIPE);
}

/* ---- cancellation and deadlines ----------------------------------------------------------- */

struct interrupt_res {
    int cancelled_recv, cancelled_send;
    int timed_recv, timed_send;
    uint64_t timed_ns;
    int nothing_sent;
    int channel_still_works, got;
};

struct timed {
    urt_chan *c;
    int send;
    int res;
};

static int timed_op(void *arg)
{
    struct timed *t = arg;
    int v = 31;
    urt_deadline(urt_now() + URT_MSEC(10));
    t->res = t->send ? urt_chan_send(t->c, &v) : urt_chan_recv(t->c, &v);
    return 0;
}

static int interrupt_main(void *arg)
{
    struct interrupt_res *r = arg;
    urt_chan *c = urt_chan_new(sizeof(int), 0);
    urt_task *rv = urt_spawn(waiting_recv, c);
    urt_task *sd = urt_spawn(waiting_send, c);   /* meets rv: both complete */
    EXPECT_EQ(urt_join(rv), 0);
    EXPECT_EQ(urt_join(sd), 0);

    rv = urt_spawn(waiting_recv, c);
    urt_yield();
    urt_cancel(rv);
    r->cancelled_recv = urt_join(rv);
    sd = urt_spawn(waiting_send, c);
    urt_yield();
    urt_cancel(sd);
    r->cancelled_send = urt_join(sd);
    /* the cancelled sender's element is not in the channel, the cancelled receiver gone */
    int v;
    r->nothing_sent = urt_chan_try_recv(c, &v) == -EAGAIN && urt_chan_try_send(c, &v) == -EAGAIN;

    uint64_t t0 = urt_now();
    struct timed tr = { c, 0, 99 }, ts = { c, 1, 99 };
    urt_task *a = urt_spawn(timed_op, &tr);
    EXPECT_EQ(urt_join(a), 0);
    r->timed_ns = urt_now() - t0;
    a = urt_spawn(timed_op, &ts);
    EXPECT_EQ(urt_join(a), 0);
    r->timed_recv = tr.res;
    r->timed_send = ts.res;

    /* and the channel still works */
    sd = urt_spawn(waiting_send, c);
    r->channel_still_works = urt_chan_recv(c, &r->got) == 0;
    EXPECT_EQ(urt_join(sd), 0);
    urt_chan_free(c);
    return 0;
}

UT_TEST(cancel_and_deadline_of_blocked_channel_ops)
{
    struct interrupt_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(interrupt_main, &r, NULL), 0);
    assert_int_equal(r.cancelled_recv, -ECANCELED);
    assert_int_equal(r.cancelled_send, -ECANCELED);
    assert_int_equal(r.nothing_sent, 1);
    assert_int_equal(r.timed_recv, -ETIMEDOUT);
    assert_int_equal(r.timed_send, -ETIMEDOUT);
    assert_true(r.timed_ns >= URT_MSEC(9));
    assert_true(r.timed_ns < URT_SEC(5));
    assert_int_equal(r.channel_still_works, 1);
    assert_int_equal(r.got, 5);
}

/* ---- bad arguments ---------------------------------------------------------------------------- */

struct args_res {
    int send_null_c, send_null_e, recv_null_c, recv_null_e;
    int try_send_null, try_recv_null, try_send_null_e, try_recv_null_e;
};

static int args_main(void *arg)
{
    struct args_res *r = arg;
    urt_chan *c = urt_chan_new(sizeof(int), 1);
    int v = 0;
    r->send_null_c = urt_chan_send(NULL, &v);
    r->send_null_e = urt_chan_send(c, NULL);
    r->recv_null_c = urt_chan_recv(NULL, &v);
    r->recv_null_e = urt_chan_recv(c, NULL);
    r->try_send_null = urt_chan_try_send(NULL, &v);
    r->try_recv_null = urt_chan_try_recv(NULL, &v);
    r->try_send_null_e = urt_chan_try_send(c, NULL);
    r->try_recv_null_e = urt_chan_try_recv(c, NULL);
    urt_chan_close(NULL);
    urt_chan_free(NULL);
    urt_chan_free(c);
    return 0;
}

UT_TEST(null_arguments_einval)
{
    struct args_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(args_main, &r, NULL), 0);
    assert_int_equal(r.send_null_c, -EINVAL);
    assert_int_equal(r.send_null_e, -EINVAL);
    assert_int_equal(r.recv_null_c, -EINVAL);
    assert_int_equal(r.recv_null_e, -EINVAL);
    assert_int_equal(r.try_send_null, -EINVAL);
    assert_int_equal(r.try_recv_null, -EINVAL);
    assert_int_equal(r.try_send_null_e, -EINVAL);
    assert_int_equal(r.try_recv_null_e, -EINVAL);
}

UT_TEST(chan_new_errors)
{
    errno = 0;
    assert_null(urt_chan_new(0, 4));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(urt_chan_new(SIZE_MAX / 2, 4));   /* elem_size * capacity overflows */
    assert_int_equal(errno, EINVAL);
    /* created and freed outside any runtime */
    urt_chan *c = urt_chan_new(8, 16);
    assert_non_null(c);
    urt_chan_close(c);
    urt_chan_free(c);
    c = urt_chan_new(1, 0);
    assert_non_null(c);
    urt_chan_free(c);
}

/* ---- select ---------------------------------------------------------------------------------- */

struct sel_res {
    int idx, result, val;
    int counts[4];
    int errors;
    urt_chan *alien;   /* a local channel of a runtime on another thread */
};

/* Another thread's runtime, holding a local channel until told to end. */
struct alien_rt {
    urt_chan *c;
    sem_t made, done;
};

static int alien_main(void *arg)
{
    struct alien_rt *a = arg;
    a->c = urt_chan_new(sizeof(int), 1);
    sem_post(&a->made);
    while (sem_wait(&a->done) != 0)   /* (blocks the thread: nothing else runs there) */
        ;
    urt_chan_free(a->c);
    return 0;
}

static void *alien_thread(void *arg)
{
    urt_run(alien_main, arg, NULL);
    return NULL;
}

static int select_ready_body(void *arg)
{
    struct sel_res *r = arg;
    urt_chan *c[3];
    for (int i = 0; i < 3; i++)
        c[i] = urt_chan_new(sizeof(int), 1);
    int v = 42, got = 0, out = 7;
    urt_chan_send(c[1], &v);
    struct urt_case k[3] = { { c[0], URT_RECV, &got, 99 }, { c[1], URT_RECV, &got, 99 },
                             { c[2], URT_RECV, &got, 99 } };
    r->idx = urt_select(k, 3);
    r->result = k[1].result;
    r->val = got;
    /* A send case with room is ready too; the recv cases on empty channels are not. */
    struct urt_case k2[2] = { { c[0], URT_RECV, &got, 99 }, { c[2], URT_SEND, &out, 99 } };
    if (urt_select(k2, 2) != 1 || k2[1].result != 0 || k2[0].result != 99)
        r->errors++;
    if (urt_chan_try_recv(c[2], &got) != 0 || got != 7)
        r->errors++;
    for (int i = 0; i < 3; i++)
        urt_chan_free(c[i]);
    return 0;
}

UT_TEST(select_performs_the_ready_case)
{
    struct sel_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(select_ready_body, &r, NULL), 0);
    assert_int_equal(r.idx, 1);
    assert_int_equal(r.result, 0);
    assert_int_equal(r.val, 42);
    assert_int_equal(r.errors, 0);
}

#define FAIR_ROUNDS 100000

static int select_fair_body(void *arg)
{
    struct sel_res *r = arg;
    urt_chan *c[4];
    int v = 0;
    for (int i = 0; i < 4; i++) {
        c[i] = urt_chan_new(sizeof(int), 1);
        urt_chan_send(c[i], &i);
    }
    struct urt_case k[4];
    for (int i = 0; i < 4; i++)
        k[i] = (struct urt_case){ c[i], URT_RECV, &v, 0 };
    for (int n = 0; n < FAIR_ROUNDS; n++) {
        int i = urt_select(k, 4);
        if (i < 0 || i > 3 || v != i) {
            r->errors++;
            break;
        }
        r->counts[i]++;
        urt_chan_send(c[i], &i);   /* every channel stays ready */
    }
    for (int i = 0; i < 4; i++)
        urt_chan_free(c[i]);
    return 0;
}

UT_TEST(select_is_fair_among_ready_cases)
{
    struct sel_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(select_fair_body, &r, NULL), 0);
    assert_int_equal(r.errors, 0);
    for (int i = 0; i < 4; i++) {
        assert_in_range(r.counts[i], FAIR_ROUNDS * 20 / 100, FAIR_ROUNDS * 30 / 100);
    }
}

struct sel_wait {
    urt_chan *c[6];
    int which;
};

static int late_sender(void *arg)
{
    struct sel_wait *w = arg;
    int v = 100 + w->which;
    urt_yield();
    urt_yield();
    return urt_chan_send(w->c[w->which], &v);
}

static int select_wait_body(void *arg)
{
    struct sel_res *r = arg;
    for (int n = 2; n <= 6; n += 4) {   /* 2 cases: waits on the stack; 6: from the heap */
        struct sel_wait w = { .which = n - 1 };
        for (int i = 0; i < n; i++)
            w.c[i] = urt_chan_new(sizeof(int), 0);
        urt_task *t = urt_spawn(late_sender, &w);
        int got = 0;
        struct urt_case k[6];
        for (int i = 0; i < n; i++)
            k[i] = (struct urt_case){ w.c[i], URT_RECV, &got, 99 };
        int i = urt_select(k, n);
        if (i != n - 1 || k[i].result != 0 || got != 100 + n - 1)
            r->errors++;
        if (urt_join(t) != 0)
            r->errors++;
        /* The other cases' waits are gone: a send on them now finds no receiver. */
        int v = 1;
        for (int j = 0; j < n - 1; j++)
            if (urt_chan_try_send(w.c[j], &v) != -EAGAIN)
                r->errors++;
        for (int j = 0; j < n; j++)
            urt_chan_free(w.c[j]);
    }
    return 0;
}

UT_TEST(select_waits_for_the_first_case)
{
    struct sel_res r;
    memset(&r, 0, sizeof r);
    assert_int_equal(urt_run(select_wait_body, &r, NULL), 0);
    assert_int_equal(r.errors, 0);
}

static int canceller(void *arg)
{
    urt_cancel(arg);
    return 0;
}

static int select_edges_body(void *arg)
{
    struct sel_res *r = arg;
    urt_chan *a = urt_chan_new(sizeof(int), 0), *b = urt_chan_new(sizeof(int), 0);
    int v = 0;
    struct urt_case k[2] = { { a, URT_RECV, &v, 99 }, { b, URT_SEND, &v, 99 } };
    /* Under a passed deadline: -ETIMEDOUT, nothing performed. */
    urt_scope s;
    urt_scope_enter(&s, urt_now() + URT_MSEC(5), 0);
    if (urt_select(k, 2) != -ETIMEDOUT)
        r->errors++;
    if (urt_scope_exit(&s) != 1)
        r->errors++;
    /* Cancelled while waiting. */
    urt_task *t = urt_spawn(canceller, urt_self());
    if (urt_select(k, 2) != -ECANCELED)
        r->errors++;
    urt_join(t);
    urt_scope_enter(&s, 0, URT_SHIELD);   /* (the rest runs shielded from that cancel) */
    /* Every channel closed: ready, -EPIPE. */
    urt_chan_close(a);
    urt_chan_close(b);
    int i = urt_select(k, 2);
    if (i < 0 || k[i].result != -EPIPE)
        r->errors++;
    /* Bad input. */
    struct urt_case bad[1] = { { NULL, URT_RECV, &v, 0 } };
    if (urt_select(bad, 1) != -EINVAL || urt_select(k, 0) != -EINVAL ||
        urt_select(k, URT_SELECT_MAX + 1) != -EINVAL || urt_select(NULL, 1) != -EINVAL)
        r->errors++;
    bad[0] = (struct urt_case){ a, 7, &v, 0 };
    if (urt_select(bad, 1) != -EINVAL)
        r->errors++;
    /* A malformed case is -EINVAL wherever it stands, even after another runtime's channel. */
    urt_chan *alien = r->alien;
    if (alien) {
        struct urt_case mixed[2] = { { alien, URT_RECV, &v, 0 }, { a, URT_RECV, NULL, 0 } };
        if (urt_select(mixed, 2) != -EINVAL)
            r->errors++;
        mixed[1].elem = &v;
        if (urt_select(mixed, 2) != -EXDEV)
            r->errors++;
    }
    urt_scope_exit(&s);
    urt_chan_free(a);
    urt_chan_free(b);
    return 0;
}

UT_TEST(select_deadline_cancel_closed_and_bad_cases)
{
    struct sel_res r;
    memset(&r, 0, sizeof r);
    struct alien_rt a;
    pthread_t th;
    sem_init(&a.made, 0, 0);
    sem_init(&a.done, 0, 0);
    assert_int_equal(pthread_create(&th, NULL, alien_thread, &a), 0);
    while (sem_wait(&a.made) != 0)
        ;
    r.alien = a.c;
    assert_non_null(r.alien);
    assert_int_equal(urt_run(select_edges_body, &r, NULL), 0);
    sem_post(&a.done);
    pthread_join(th, NULL);
    assert_int_equal(r.errors, 0);
}

/* A channel freed while a select waits on it: the select ends with that case and -EPIPE, and
   touches neither that channel nor the memory it had again (ASan would see it), while its other
   case's waiter is taken off the channel still alive. */
struct freed_sel {
    urt_chan *a, *b;
    int idx, result;
};

static int select_on_two(void *arg)
{
    struct freed_sel *f = arg;
    int v = 0;
    struct urt_case k[2] = { { f->a, URT_RECV, &v, 0 }, { f->b, URT_RECV, &v, 0 } };
    f->idx = urt_select(k, 2);
    f->result = f->idx >= 0 ? k[f->idx].result : 0;
    return 0;
}

static int select_freed_body(void *arg)
{
    struct freed_sel *f = arg;
    f->a = urt_chan_new(sizeof(int), 0);
    f->b = urt_chan_new(sizeof(int), 0);
    urt_task *t = urt_spawn(select_on_two, f);
    urt_yield();   /* it waits on both */
    urt_chan_free(f->a);
    void *reuse = malloc(256);   /* the freed channel's memory, likely, used for something else */
    if (reuse)
        memset(reuse, 0xff, 256);
    EXPECT_EQ(urt_join(t), 0);
    free(reuse);
    EXPECT_EQ(f->idx, 0);
    EXPECT_EQ(f->result, -EPIPE);
    /* b has no waiter left: a try_send finds no receiver */
    int one = 1;
    EXPECT_EQ(urt_chan_try_send(f->b, &one), -EAGAIN);
    urt_chan_free(f->b);
    return 0;
}

UT_TEST(select_on_a_channel_freed_under_it)
{
    struct freed_sel f;
    memset(&f, 0, sizeof f);
    assert_int_equal(urt_run(select_freed_body, &f, NULL), 0);
}

/* Across two runtimes: runtime 1 sends N numbers on each of two shared channels; runtime 0
   takes them all through selects. Each arrives once, in order per channel. */
#define XSEL_N 50000

struct xsel {
    urt_chan *c[2];
    int errors;
    long got;
};

static int xsel_main(void *arg)
{
    struct xsel *x = arg;
    if (urt_thread_index() == 1) {
        for (int i = 0; i < XSEL_N; i++)
            for (int j = 0; j < 2; j++)
                if (urt_chan_send(x->c[j], &i) != 0)
                    return -1;
        return 0;
    }
    int next[2] = { 0, 0 }, v = 0;
    struct urt_case k[2] = { { x->c[0], URT_RECV, &v, 0 }, { x->c[1], URT_RECV, &v, 0 } };
    while (next[0] < XSEL_N || next[1] < XSEL_N) {
        int i = urt_select(k, 2);
        if (i < 0 || k[i].result != 0 || v != next[i]) {
            x->errors++;
            return -1;
        }
        next[i]++;
        x->got++;
    }
    return 0;
}

UT_TEST_T(select_across_runtimes_loses_nothing, 120)
{
    UT_NOT_UNDER_VALGRIND();
    struct xsel x;
    memset(&x, 0, sizeof x);
    x.c[0] = urt_chan_new_shared(sizeof(int), 0);
    x.c[1] = urt_chan_new_shared(sizeof(int), 4);
    assert_int_equal(urt_run_threads(2, xsel_main, &x, NULL), 0);
    assert_int_equal(x.errors, 0);
    assert_int_equal(x.got, 2L * XSEL_N);
    urt_chan_free(x.c[0]);
    urt_chan_free(x.c[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(buffered_and_rendezvous_fifo),
        cmocka_unit_test(full_buffer_keeps_fifo_with_waiting_sender),
        cmocka_unit_test(rendezvous_send_waits_for_receiver),
        cmocka_unit_test(elements_copied_whole),
        cmocka_unit_test(try_send_try_recv),
        cmocka_unit_test(close_semantics_epipe_and_drain),
        cmocka_unit_test(close_wakes_every_waiter),
        cmocka_unit_test(cancel_and_deadline_of_blocked_channel_ops),
        cmocka_unit_test(null_arguments_einval),
        cmocka_unit_test(chan_new_errors),
        cmocka_unit_test(select_performs_the_ready_case),
        cmocka_unit_test(select_is_fair_among_ready_cases),
        cmocka_unit_test(select_waits_for_the_first_case),
        cmocka_unit_test(select_deadline_cancel_closed_and_bad_cases),
        cmocka_unit_test(select_on_a_channel_freed_under_it),
        cmocka_unit_test(select_across_runtimes_loses_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
