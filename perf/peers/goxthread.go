// SPDX-License-Identifier: MIT

// goxthread: the ping-pong of perf/xthread in Go, as its peer: two goroutines over two
// unbuffered channels, run with GOMAXPROCS=2. Built by CMake where Debian's golang-go is
// installed.
package main

import (
	"flag"
	"fmt"
	"time"
)

func main() {
	trips := flag.Int("trips", 200000, "round trips")
	flag.Parse()
	ping, pong := make(chan int), make(chan int)
	go func() {
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
	fmt.Printf("{\"peer\":\"go\",\"trips\":%d,\"ns_per_round_trip\":%.1f}\n", *trips, ns)
}
