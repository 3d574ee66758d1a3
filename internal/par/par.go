// Package par runs loops over tens of millions of chunks on every CPU.
package par

import (
	"runtime"
	"sync"
	"sync/atomic"
)

// Grain is how many indices a worker takes at a time: enough that taking
// them costs nothing next to the work, few enough that the workers finish
// together.
const Grain = 1 << 16

// Ranges calls fn(lo, hi) for consecutive ranges that cover [0, n), on
// one goroutine per CPU, and returns when all calls have returned. worker
// (0 to the number of goroutines - 1) lets fn keep per-goroutine state
// without locks. Small loops run on the caller's goroutine.
func Ranges(n int, fn func(worker, lo, hi int)) { RangesOf(n, Grain, fn) }

// RangesOf is Ranges with ranges of grain indices: for loops whose every
// index is much work (a block of chunks, not a chunk).
func RangesOf(n, grain int, fn func(worker, lo, hi int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+grain-1)/grain)
	if workers <= 1 {
		if n > 0 {
			fn(0, 0, n)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for k := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(int64(grain))) - grain
				if lo >= n {
					return
				}
				fn(k, lo, min(lo+grain, n))
			}
		}()
	}
	wg.Wait()
}

// Workers returns how many goroutines Ranges uses for n indices: the size
// for per-worker state.
func Workers(n int) int {
	return max(1, min(runtime.GOMAXPROCS(0), (n+Grain-1)/Grain))
}
