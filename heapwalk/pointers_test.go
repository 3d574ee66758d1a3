package heapwalk

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/internal/par"
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

// BenchmarkWalkSegment walks a 256 MiB heap in memory, shaped like
// bigheap's (chunks of 32-512 bytes skewed small, filled with 0x5a bytes;
// the first half hold two pointers to chunks, the second half none), in
// one part: the walk's own cost per chunk, without system calls.
func BenchmarkWalkSegment(b *testing.B) {
	const base, size = 0x555555560000, 256 << 20
	f := &fakeSpace{base: base, mem: make([]byte, size)}
	rng := rand.New(rand.NewPCG(9, 10))
	var users []uint64
	top := fakeHeap(f, base, rng, func() uint64 {
		u := rng.Float64()
		return (32 + uint64(480*u*u*u*u*u*u)) &^ 15
	}, func(u, n uint64) {
		for a := u; a+8 <= u+n-8; a += 8 {
			f.put(a, 0x5a5a5a5a5a5a5a5a)
		}
		users = append(users, u)
	})
	for k, u := range users[:len(users)/2] {
		f.put(u, users[min(2*k+1, len(users)-1)])
		f.put(u+8, users[min(2*k+2, len(users)-1)])
	}
	for _, cache := range []bool{true, false} {
		b.Run(fmt.Sprintf("cache=%v", cache), func(b *testing.B) {
			var n int
			for range b.N {
				w := &walker{s: f, h: &Heap{}, maps: f.Mappings(), parts: 1, noCache: !cache}
				w.cand = newCandidates(w.maps)
				w.h.Chunks.reserve(size/16 + 4096)
				w.walkSegment(&Arena{Addr: 0x1000, Main: true, Top: addrspace.Addr(top)}, base, base+size)
				n = w.h.Chunks.Len()
				// Unmap the table now (a cleanup does, after a GC): the
				// next walk writes fresh pages, as heapsift's one walk does,
				// but does not add them to those of the walks before.
				b.StopTimer()
				runtime.GC()
				b.StartTimer()
			}
			b.SetBytes(size)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/chunk")
		})
	}
}

// TestEachMmapped compares EachMmapped with Mmapped on tables with mmapped
// chunks here and there.
func TestEachMmapped(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	var c Chunks
	a := uint64(0x555555560000)
	for range 1000 {
		mm := rng.IntN(10) == 0
		c.add(a, 64, InUse, mm)
		a += 64 + 4096*uint64(rng.IntN(2))
	}
	c.seal()
	var got, want []int
	c.EachMmapped(func(i int) { got = append(got, i) })
	for i := range c.Len() {
		if c.Mmapped(i) {
			want = append(want, i)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(want) == 0 {
		t.Fatalf("EachMmapped: %v, want %v", got, want)
	}
}

// TestIsSorted: a table out of order at any one place, even at the edge
// of two ranges of par.Ranges, is seen as such.
func TestIsSorted(t *testing.T) {
	n := 3*par.Grain + 5
	c := &Chunks{addr: make([]uint64, n)}
	for i := range c.addr {
		c.addr[i] = uint64(16 * i)
	}
	if !c.isSorted() {
		t.Fatal("sorted table seen as unsorted")
	}
	for _, i := range []int{1, par.Grain - 1, par.Grain, 2*par.Grain + 1, n - 1} {
		c.addr[i-1], c.addr[i] = c.addr[i], c.addr[i-1]
		if c.isSorted() {
			t.Fatalf("chunks %d and %d swapped, seen as sorted", i-1, i)
		}
		c.addr[i-1], c.addr[i] = c.addr[i], c.addr[i-1]
	}
}

// TestPointerCacheManySegments walks several heaps into one table, as the
// heaps of thread arenas are (newest first, each in parts), and checks
// every chunk's cached pointers against memory: each segment's words must
// get room of their own (they once got the room of the segment before,
// and overwrote its words).
func TestPointerCacheManySegments(t *testing.T) {
	const base, heap, heaps = 0x7f0000000000, 2 << 20, 6
	f := &fakeSpace{base: base, mem: make([]byte, heap*heaps)}
	rng := rand.New(rand.NewPCG(13, 14))
	tops := make([]uint64, heaps)
	for h := range heaps {
		start := base + uint64(h*heap)
		// Small chunks full of pointers: the words of one heap fill
		// more room than its chunks take slots.
		tops[h] = fakeHeapTo(f, start, start+heap, rng, func() uint64 { return 32 + 16*uint64(rng.IntN(2)) }, func(u, n uint64) {
			for a := u; a+8 <= u+n-8; a += 8 {
				f.put(a, (base+uint64(rng.IntN(heap*heaps)))&^15)
			}
		})
	}
	// The heaps of an arena are walked newest first.
	c, cached := walkFakeHeaps(t, f, base, heap, tops, true, true)
	if cached < c.Len()/4 {
		t.Errorf("%d of %d chunks cached", cached, c.Len())
	}
}

// TestPointerCacheWithoutRoom walks heaps into a table that could not be
// reserved (the system refused to overcommit), whose chunks and words grow
// as slices: the cache must hold the same words.
func TestPointerCacheWithoutRoom(t *testing.T) {
	const base, heap = 0x7f0000000000, 1 << 20
	f := &fakeSpace{base: base, mem: make([]byte, 2*heap)}
	rng := rand.New(rand.NewPCG(15, 16))
	var tops [2]uint64
	for h := range 2 {
		start := base + uint64(h*heap)
		tops[h] = fakeHeapTo(f, start, start+heap, rng, func() uint64 { return 32 + 16*uint64(rng.IntN(4)) }, func(u, n uint64) {
			for a := u; a+8 <= u+n-8; a += 8 {
				f.put(a, 0x5a5a5a5a5a5a5a5a)
			}
			f.put(u, (base+uint64(rng.IntN(2*heap)))&^15)
		})
	}
	c, cached := walkFakeHeaps(t, f, base, heap, tops[:], false, false)
	if c.mem != nil {
		t.Fatal("the table was reserved")
	}
	if cached < c.Len()/2 {
		t.Errorf("%d of %d chunks cached", cached, c.Len())
	}
}

// walkFakeHeaps walks the fake heaps of size bytes from base (the heap k
// has its top at tops[k]) into one table, in 2 parts each, newest first or
// in order, into a table reserved or not; then it sorts the table, indexes
// the cache and checks every cached chunk's words against memory. It
// returns the table and how many chunks it caches.
func walkFakeHeaps(t *testing.T, f *fakeSpace, base, size uint64, tops []uint64, newestFirst, reserve bool) (*Chunks, int) {
	t.Helper()
	w := &walker{s: f, h: &Heap{}, maps: f.Mappings(), parts: 2, minPart: 4096}
	w.cand = newCandidates(w.maps)
	if reserve {
		w.h.Chunks.reserve(len(f.mem)/16 + 4096)
	}
	for k := range tops {
		if newestFirst {
			k = len(tops) - 1 - k
		}
		start := base + uint64(k)*size
		w.walkSegment(&Arena{Addr: 0x1000, Top: addrspace.Addr(tops[k])}, addrspace.Addr(start), addrspace.Addr(start+size))
	}
	c := &w.h.Chunks
	c.sort()
	if !c.indexPointers() {
		t.Fatal("the pointer cache did not add up and was dropped")
	}
	return c, checkCache(t, "", c, f, &w.cand)
}

// checkCache compares the cached words of every chunk of c with the words
// of its user data in f that lie in the candidates, and returns how many
// chunks have their words cached.
func checkCache(t *testing.T, what string, c *Chunks, f *fakeSpace, cand *candidates) int {
	t.Helper()
	cached := 0
	for i := range c.Len() {
		got, ok := c.Pointers(i, nil)
		if !ok {
			continue
		}
		cached++
		var want []uint64
		for _, v := range addrspace.Words(f.mem[uint64(c.User(i))-f.base : uint64(c.Addr(i))+c.Size(i)+8-f.base]) {
			if v-cand.lo < cand.span && addrspace.Find(cand.ranges, addrspace.Addr(v)) != nil {
				want = append(want, v)
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%schunk %v: cached pointers %#x, memory holds %#x", what, c.Addr(i), got, want)
		}
	}
	// A cursor gives the same words, whether it steps a chunk at a time,
	// a few, or more than a group (then it seeks).
	for _, steps := range [][]int{{1}, {1, 2, 3, 5, 8, 13, 21, 34, 55, 63, 64, 65, 200}} {
		cur := c.PointerCursor()
		for i, k := 0, 0; i < c.Len(); i, k = i+steps[k%len(steps)], k+1 {
			got, ok := cur.Pointers(i, nil)
			want, wantOK := c.Pointers(i, nil)
			if ok != wantOK || !slices.Equal(got, want) {
				t.Fatalf("%schunk %d: the cursor gives %#x (%v), Pointers %#x (%v)", what, i, got, ok, want, wantOK)
			}
		}
	}
	return cached
}
