/* SPDX-License-Identifier: MIT */
/*
 * list.h - one intrusive doubly linked FIFO, for the waiter queues of every layer (libuv's
 * queue.h idea): a record embeds a struct urt__link, the queue is a struct urt__list, and the
 * record is found back with urt__container_of.
 */
#ifndef URT_BASE_LIST_H
#define URT_BASE_LIST_H

#include <stddef.h>

struct urt__link {
    struct urt__link *prev, *next;
};

struct urt__list {
    struct urt__link *head, *tail;
};

static inline void urt__list_push(struct urt__list *q, struct urt__link *l)
{
    l->next = NULL;
    l->prev = q->tail;
    if (q->tail)
        q->tail->next = l;
    else
        q->head = l;
    q->tail = l;
}

static inline void urt__list_remove(struct urt__list *q, struct urt__link *l)
{
    if (l->prev)
        l->prev->next = l->next;
    else
        q->head = l->next;
    if (l->next)
        l->next->prev = l->prev;
    else
        q->tail = l->prev;
    l->prev = l->next = NULL;
}

/* The first link, taken off; NULL when empty. */
static inline struct urt__link *urt__list_pop(struct urt__list *q)
{
    struct urt__link *l = q->head;
    if (l)
        urt__list_remove(q, l);
    return l;
}

#endif
