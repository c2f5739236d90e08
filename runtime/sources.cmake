# SPDX-License-Identifier: MIT
# The runtime's sources, one folder per layer, each knowing only those below it
# (docs/architecture.md): services on ops on sched on backend on switch, base under all.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(URT_SWITCH ${PROJECT_SOURCE_DIR}/runtime/switch/arch/switch_aarch64.S)
else()
  set(URT_SWITCH ${PROJECT_SOURCE_DIR}/runtime/switch/arch/switch_x86_64.S)
endif()

set(URT_SOURCES
  # base: fault injection, compiler helpers
  ${PROJECT_SOURCE_DIR}/runtime/base/fault.c
  # switch/stack: the context switch, stacks and guard pages
  ${URT_SWITCH}
  ${PROJECT_SOURCE_DIR}/runtime/switch/context.c
  ${PROJECT_SOURCE_DIR}/runtime/switch/stack.c
  # backend: the only code that knows io_uring
  ${PROJECT_SOURCE_DIR}/runtime/backend/uring.c
  # sched: tasks, run queue, parking, timers, services' hooks, the inbox, sets of runtimes
  ${PROJECT_SOURCE_DIR}/runtime/sched/task.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/scope.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/sched.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/waitq.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/timer.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/service.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/inbox.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/xwait.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/threads.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/overflow.c
  ${PROJECT_SOURCE_DIR}/runtime/sched/run.c
  # ops: a task's kernel operation, and the blocking-style calls
  ${PROJECT_SOURCE_DIR}/runtime/ops/op.c
  ${PROJECT_SOURCE_DIR}/runtime/ops/io.c
  ${PROJECT_SOURCE_DIR}/runtime/ops/sleep.c
  # services: what plugs in on top
  ${PROJECT_SOURCE_DIR}/runtime/services/send_recv.c
  ${PROJECT_SOURCE_DIR}/runtime/services/sendfile.c
  ${PROJECT_SOURCE_DIR}/runtime/services/listener.c
  ${PROJECT_SOURCE_DIR}/runtime/services/blocking.c
  ${PROJECT_SOURCE_DIR}/runtime/services/signal.c
  ${PROJECT_SOURCE_DIR}/runtime/services/group.c
  ${PROJECT_SOURCE_DIR}/runtime/services/chan.c
  ${PROJECT_SOURCE_DIR}/runtime/services/sync.c
  ${PROJECT_SOURCE_DIR}/runtime/services/mutex.c
  ${PROJECT_SOURCE_DIR}/runtime/services/sem.c
  ${PROJECT_SOURCE_DIR}/runtime/services/event.c
  ${PROJECT_SOURCE_DIR}/runtime/services/cond.c
  ${PROJECT_SOURCE_DIR}/runtime/services/dump.c
)
