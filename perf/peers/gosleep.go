// SPDX-License-Identifier: MIT

// gosleep: the job of perf/stress in Go, as its peer: N goroutines that sleep M ms. Built by
// CMake where Debian's golang-go is installed.
//
// With -alive (the peer perf/stress takes its ratio against), every goroutine is alive at once:
// each waits at a barrier until all are spawned, then all sleep until one common instant, as
// urt's tasks do in perf/stress. Without it each sleeps from its own start, so that early ones
// may finish, and their stacks be reused, before the last is spawned.
package main

import (
	"flag"
	"fmt"
	"sync"
	"time"
)

func main() {
	n := flag.Int("n", 1000000, "goroutines")
	ms := flag.Int("ms", 1000, "milliseconds each sleeps")
	alive := flag.Bool("alive", false, "all alive at once: a barrier, then one common wake-up")
	flag.Parse()
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(*n)
	if !*alive {
		for i := 0; i < *n; i++ {
			go func() {
				time.Sleep(time.Duration(*ms) * time.Millisecond)
				wg.Done()
			}()
		}
		wg.Wait()
		fmt.Printf("{\"peer\":\"go\",\"alive\":false,\"tasks\":%d,\"wall_s\":%.3f}\n", *n,
			time.Since(t0).Seconds())
		return
	}
	start := make(chan struct{})
	var wake time.Time
	for i := 0; i < *n; i++ {
		go func() {
			<-start
			time.Sleep(time.Until(wake))
			wg.Done()
		}()
	}
	t1 := time.Now()
	wake = t1.Add(time.Duration(*ms) * time.Millisecond)
	close(start)
	wg.Wait()
	t2 := time.Now()
	fmt.Printf("{\"peer\":\"go\",\"alive\":true,\"tasks\":%d,\"spawn_s\":%.3f,\"wake_s\":%.3f,\"wall_s\":%.3f}\n",
		*n, t1.Sub(t0).Seconds(), t2.Sub(wake).Seconds(), t2.Sub(t0).Seconds())
}
