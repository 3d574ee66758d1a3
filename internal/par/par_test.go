package par

import (
	"sync/atomic"
	"testing"
)

// TestRangesCoverEveryIndexOnce runs loops of sizes around the grain and
// checks that every index is visited once, by a worker Workers allows.
func TestRangesCoverEveryIndexOnce(t *testing.T) {
	for _, n := range []int{0, 1, Grain - 1, Grain, Grain + 1, 5*Grain + 17} {
		seen := make([]atomic.Int32, n)
		var bad atomic.Bool
		Ranges(n, func(worker, lo, hi int) {
			if worker < 0 || worker >= Workers(n) || lo < 0 || hi > n || lo >= hi || lo%Grain != 0 {
				bad.Store(true)
				return
			}
			for i := lo; i < hi; i++ {
				seen[i].Add(1)
			}
		})
		if bad.Load() {
			t.Fatalf("n=%d: a call got a worker or range out of bounds", n)
		}
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Fatalf("n=%d: index %d visited %d times", n, i, c)
			}
		}
	}
}

// TestRangesOfSmallGrain: a loop of few, heavy indices still runs on
// every CPU, each index once.
func TestRangesOfSmallGrain(t *testing.T) {
	const n = 1000
	seen := make([]atomic.Int32, n)
	RangesOf(n, 3, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			seen[i].Add(1)
		}
	})
	for i := range seen {
		if c := seen[i].Load(); c != 1 {
			t.Fatalf("index %d visited %d times", i, c)
		}
	}
}
