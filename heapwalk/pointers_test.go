package heapwalk

import (
	"math/rand/v2"
	"testing"
)

// TestAnyBit compares anyBit with a test of every bit, for ranges that
// start and end anywhere in masks of a few words.
func TestAnyBit(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		mask := make([]uint64, 4)
		for k := range mask {
			if rng.IntN(2) == 0 {
				mask[k] = 1 << rng.IntN(64)
			}
		}
		from := rng.IntN(256)
		to := from + rng.IntN(256-from+1)
		want := false
		for b := from; b < to; b++ {
			want = want || mask[b>>6]>>(b&63)&1 != 0
		}
		if got := anyBit(mask, from, to); got != want {
			t.Fatalf("mask %#x, bits [%d, %d): %v, want %v", mask, from, to, got, want)
		}
	}
}

// TestCountsBefore checks the sum of cached counts over the 8-byte
// steps against a plain sum.
func TestCountsBefore(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	c := &Chunks{state: make([]State, 300)}
	for i := range c.state {
		c.state[i] = State(rng.IntN(int(numStates))) | State(rng.IntN(maxCached+1))<<countShift
	}
	for i := range c.state {
		var want uint64
		for j := i &^ 63; j < i; j++ {
			want += uint64(c.cachedCount(j))
		}
		if got := c.countsBefore(i); got != want {
			t.Fatalf("chunk %d: %d cached words before it in its 64, want %d", i, got, want)
		}
	}
}

// TestRunEnd builds tables of runs of chunks that follow each other,
// separated by gaps and mmapped chunks, and checks RunEnd from every chunk
// against Followed.
func TestRunEnd(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for range 50 {
		var c Chunks
		a := uint64(0x555555560000)
		for range 1 + rng.IntN(300) {
			switch rng.IntN(20) {
			case 0:
				a += 4096 // a gap
				c.add(a, 64, InUse, false)
			case 1:
				a += 1 << 20
				c.add(a, 128<<10, InUse, true) // mmapped
				a += 128 << 10
				continue
			default:
				c.add(a, 64, InUse, false)
			}
			a += 64
		}
		c.seal()
		for i := range c.Len() {
			limit := i + rng.IntN(200)
			want := i
			for c.Followed(want) && want < limit {
				want++
			}
			if got := c.RunEnd(i, limit); got != want {
				t.Fatalf("%d chunks: RunEnd(%d, %d) = %d, want %d", c.Len(), i, limit, got, want)
			}
		}
	}
}
