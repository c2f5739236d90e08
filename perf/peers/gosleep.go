// SPDX-License-Identifier: MIT

// gosleep: the job of perf/stress in Go, as its peer: N goroutines that each sleep M ms, all
// alive at once. Built by CMake where Debian's golang-go is installed.
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
	flag.Parse()
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(*n)
	for i := 0; i < *n; i++ {
		go func() {
			time.Sleep(time.Duration(*ms) * time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	fmt.Printf("{\"peer\":\"go\",\"tasks\":%d,\"wall_s\":%.3f}\n", *n, time.Since(t0).Seconds())
}
