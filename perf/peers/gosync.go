// SPDX-License-Identifier: MIT

// gosync: perf/sync's jobs in Go, as its peer, run with GOMAXPROCS=1: (1) an uncontended
// sync.Mutex Lock/Unlock; (2) two goroutines trading one sync.Mutex (lock, bump a shared
// counter, unlock, again) - Go's mutex does not hand off to a waiter (outside its starvation
// mode), so the owner changes are counted; then the same with runtime.Gosched() after each
// Unlock, which makes the two alternate as urt's handoff does; (3) a select over 4 buffered channels, one holding
// data, against a plain receive on one. Built by CMake where Debian's golang-go is installed.
// Prints one JSON line.
package main

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"time"
)

const warm = 1000
const batch = 4096

var sink uint64

func uncontended(pairs int) float64 {
	var m sync.Mutex
	for i := 0; i < warm; i++ {
		m.Lock()
		m.Unlock()
	}
	t0 := time.Now()
	for i := 0; i < pairs; i++ {
		m.Lock()
		m.Unlock()
	}
	return float64(time.Since(t0).Nanoseconds()) / float64(pairs)
}

// Mirrors perf/sync.c's acquired(): timed from acquisition warm to acquisition warm+handoffs.
type ho struct {
	m       sync.Mutex
	count   int
	last    int
	changes int
	t0, t1  time.Time
}

func (h *ho) loop(me, handoffs int, yield bool, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		h.m.Lock()
		more := false
		if h.count <= warm+handoffs {
			if h.count > warm && h.last != me {
				h.changes++
			}
			if h.count == warm {
				h.t0 = time.Now()
			} else if h.count == warm+handoffs {
				h.t1 = time.Now()
			}
			h.last = me
			more = h.count < warm+handoffs
			h.count++
		}
		h.m.Unlock()
		if !more {
			return
		}
		if yield {
			runtime.Gosched()
		}
	}
}

func contended(handoffs int, yield bool) (float64, float64) {
	var h ho
	var wg sync.WaitGroup
	wg.Add(2)
	go h.loop(1, handoffs, yield, &wg)
	go h.loop(2, handoffs, yield, &wg)
	wg.Wait()
	return float64(h.t1.Sub(h.t0).Nanoseconds()) / float64(handoffs),
		float64(h.changes) / float64(handoffs)
}

func fill(c chan uint64, n int) {
	for i := 0; i < n; i++ {
		c <- uint64(i)
	}
}

func selects(ops int) (float64, float64) {
	var ch [4]chan uint64
	for i := range ch {
		ch[i] = make(chan uint64, batch)
	}
	batches := (ops + batch - 1) / batch
	var tSel, tRecv time.Duration
	var s uint64
	for b := 0; b <= batches; b++ {
		c := ch[b%4]
		fill(c, batch)
		t0 := time.Now()
		for i := 0; i < batch; i++ {
			select {
			case v := <-ch[0]:
				s += v
			case v := <-ch[1]:
				s += v
			case v := <-ch[2]:
				s += v
			case v := <-ch[3]:
				s += v
			}
		}
		t1 := time.Now()
		fill(c, batch)
		t2 := time.Now()
		for i := 0; i < batch; i++ {
			s += <-c
		}
		t3 := time.Now()
		if b > 0 {
			tSel += t1.Sub(t0)
			tRecv += t3.Sub(t2)
		}
	}
	sink = s
	n := float64(batches * batch)
	return float64(tSel.Nanoseconds()) / n, float64(tRecv.Nanoseconds()) / n
}

func main() {
	pairs := flag.Int("pairs", 20000000, "uncontended Lock/Unlock pairs")
	handoffs := flag.Int("handoffs", 2000000, "acquisitions of the contended test")
	ops := flag.Int("ops", 4000000, "selects, and receives")
	flag.Parse()
	lock := uncontended(*pairs)
	cns, changes := contended(*handoffs, false)
	yns, ychanges := contended(*handoffs, true)
	sel, recv := selects(*ops)
	fmt.Printf("{\"peer\":\"go\",\"pairs\":%d,\"handoffs\":%d,\"ops\":%d,\"lock_unlock_ns\":%.2f,"+
		"\"contended_ns_per_lock\":%.1f,\"owner_changes_per_lock\":%.7f,"+
		"\"yield_ns_per_lock\":%.1f,\"yield_owner_changes_per_lock\":%.7f,"+
		"\"select4_ns\":%.1f,\"recv_ns\":%.1f}\n",
		*pairs, *handoffs, *ops, lock, cns, changes, yns, ychanges, sel, recv)
}
