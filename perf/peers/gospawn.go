// SPDX-License-Identifier: MIT

// gospawn: perf/spawn's job in Go, as its peer, run with GOMAXPROCS=1: start -batch empty
// goroutines, wait for them, and again, -n in all. Go has no join: each goroutine closes a
// channel of its own that the spawner receives from (a join per task, as urt_join), and, for
// a second figure, one sync.WaitGroup per batch (no per-task handle at all). Built by CMake
// where Debian's golang-go is installed. Prints one JSON line.
package main

import (
	"flag"
	"fmt"
	"sync"
	"time"
)

func runJoin(n, batch int) float64 {
	done := make([]chan struct{}, batch)
	t0 := time.Now()
	for d := 0; d < n; d += batch {
		k := batch
		if n-d < k {
			k = n - d
		}
		for i := 0; i < k; i++ {
			c := make(chan struct{})
			done[i] = c
			go func() { close(c) }()
		}
		for i := 0; i < k; i++ {
			<-done[i]
		}
	}
	return float64(n) / time.Since(t0).Seconds()
}

func runWaitGroup(n, batch int) float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for done := 0; done < n; done += batch {
		k := batch
		if n-done < k {
			k = n - done
		}
		wg.Add(k)
		for i := 0; i < k; i++ {
			go func() { wg.Done() }()
		}
		wg.Wait()
	}
	return float64(n) / time.Since(t0).Seconds()
}

func main() {
	n := flag.Int("n", 1000000, "goroutines in all")
	batch := flag.Int("batch", 100, "goroutines alive at once")
	flag.Parse()
	runJoin(*batch*10, *batch) // warm-up: the scheduler's free lists and stacks
	join := runJoin(*n, *batch)
	wg := runWaitGroup(*n, *batch)
	fmt.Printf("{\"peer\":\"go\",\"n\":%d,\"batch\":%d,\"spawn_join_per_s\":%.0f,\"waitgroup_per_s\":%.0f}\n",
		*n, *batch, join, wg)
}
