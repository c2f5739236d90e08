/* SPDX-License-Identifier: MIT */
/* compiler.h - branch hints and container_of, for every layer of the runtime. */
#ifndef URT_BASE_COMPILER_H
#define URT_BASE_COMPILER_H

#include <stddef.h>

#define likely(x)   __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* The record that holds `ptr` as its member `member`. */
#define urt__container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

#endif
