// SPDX-License-Identifier: MIT

// goxthread: the ping-pong of perf/xthread in Go, as its peer: two goroutines over two
// unbuffered channels, run with GOMAXPROCS=2. Built by CMake where Debian's golang-go is
// installed. Go's scheduler readies a woken goroutine on the waker's own processor (runnext),
// so the plain run mostly keeps both goroutines on one thread; -locked wires each to an OS
// thread of its own (runtime.LockOSThread), so that every message crosses threads, as between
// two urt runtimes.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

func main() {
	trips := flag.Int("trips", 200000, "round trips")
	locked := flag.Bool("locked", false, "each goroutine on an OS thread of its own")
	flag.Parse()
	if *locked {
		runtime.LockOSThread()
	}
	ping, pong := make(chan int), make(chan int)
	go func() {
		if *locked {
			runtime.LockOSThread()
		}
		for v := range ping {
			pong <- v
		}
	}()
	ping <- 0
	<-pong
	t0 := time.Now()
	for i := 0; i < *trips; i++ {
		ping <- i
		<-pong
	}
	ns := float64(time.Since(t0).Nanoseconds()) / float64(*trips)
	close(ping)
	fmt.Printf("{\"peer\":\"go\",\"locked\":%t,\"trips\":%d,\"ns_per_round_trip\":%.1f}\n", *locked, *trips, ns)
}
