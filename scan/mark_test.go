package scan

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/ptrace"
)

// TestWorkersAgree scans every fixture with 1 to 8 marking workers, again
// and again: the workers share their marks without locks and give work
// to each other, and the verdicts must not depend on how that went.
func TestWorkersAgree(t *testing.T) {
	testprog.EachLiveFixture(t, func(t *testing.T, _ string, pid int, truth *testprog.Truth) {
		p, h := attachAndWalk(t, pid)
		want := Run(p, h, Options{Workers: 1})
		reported := map[uint64]string{}
		for i, v := range want.Verdicts {
			switch v {
			case Definite, Indirect, Possible:
				reported[uint64(h.Chunks.User(i))] = v.String()
			}
		}
		if fails := testprog.Check(truth, reported); len(fails) > 0 {
			t.Fatalf("one worker: %v", fails)
		}
		for _, n := range []int{2, 3, 8} {
			for round := range 5 {
				got := Run(p, h, Options{Workers: n})
				for i := range got.Verdicts {
					if got.Verdicts[i] != want.Verdicts[i] {
						t.Fatalf("%d workers, round %d: chunk %v is %v, with one worker %v", n, round, h.Chunks.Addr(i), got.Verdicts[i], want.Verdicts[i])
					}
				}
				if got.ScannedBytes != want.ScannedBytes {
					t.Logf("%d workers: scanned %d bytes, one worker %d", n, got.ScannedBytes, want.ScannedBytes)
				}
			}
		}
	})
}

// TestChains scans linked lists of 20000 nodes linked forward, backward
// and at random, which marking follows a few links at a time, through
// windows of memory when the links lie near: every node must be
// reachable, and nothing leaked.
func TestChains(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs ptrace permission (run as root)")
	}
	const nodes = 20000
	for _, order := range []string{"forward", "backward", "random"} {
		t.Run(order, func(t *testing.T) {
			_, line := testprog.StartBench(t, "chain", strconv.Itoa(nodes), order)
			var pid int
			if _, err := fmt.Sscanf(line, "ready %d", &pid); err != nil {
				t.Fatalf("chain said %q", line)
			}
			p, h := attachAndWalk(t, pid)
			for _, workers := range []int{1, 2} {
				res := Run(p, h, Options{Workers: workers})
				count := map[Verdict]int{}
				for _, v := range res.Verdicts {
					count[v]++
				}
				if count[Reachable] < nodes || count[Definite]+count[Indirect]+count[Possible] > 0 {
					t.Errorf("%d workers: verdicts %v, want %d nodes reachable and no leak", workers, count, nodes)
				}
			}
		})
	}
}

// TestPointerCacheAgrees scans every fixture from a walk that cached
// chunks' pointers and from one that did not (so the scan reads every
// chunk): the verdicts must be the same, chunk by chunk.
func TestPointerCacheAgrees(t *testing.T) {
	var cachedAny atomic.Bool
	t.Run("fixtures", func(t *testing.T) {
		testprog.EachLiveFixture(t, func(t *testing.T, _ string, pid int, _ *testprog.Truth) {
			p, h := attachAndWalk(t, pid)
			if n, _ := h.Chunks.CachedPointers(); n > 0 {
				cachedAny.Store(true)
			}
			plain, err := heapwalk.Walk(p, heapwalk.Options{NoPointerCache: true})
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := plain.Chunks.CachedPointers(); n > 0 {
				t.Fatalf("NoPointerCache: %d chunks cached", n)
			}
			got, want := Run(p, h, Options{}), Run(p, plain, Options{})
			// The bytes scanned may differ: a chunk marked possible, then
			// reachable, is scanned twice, and how often that happens
			// depends on the order of marking (the cache follows linked
			// lists depth first).
			if !slices.Equal(got.Verdicts, want.Verdicts) {
				n := 0
				for i := range got.Verdicts {
					if got.Verdicts[i] != want.Verdicts[i] {
						n++
					}
				}
				t.Errorf("%d of %d verdicts differ with the cache", n, len(got.Verdicts))
			}
			if got.InUse != want.InUse || got.Reachable != want.Reachable {
				t.Errorf("totals with the cache: %+v, %+v; without: %+v, %+v", got.InUse, got.Reachable, want.InUse, want.Reachable)
			}
		})
	})
	if !t.Skipped() && !cachedAny.Load() {
		t.Error("no fixture had a chunk's pointers cached")
	}
}

// TestPointerCacheThreadHeaps scans a process whose heap is many
// segments (testdata/bench/threadheaps.c: a linked list of a million nodes
// in each of 4 thread arenas, 80 MB each, so two heaps per arena, each
// walked in parts) from walks with and without the pointer cache. It leaks
// nothing. The words of a segment once got room that the words of a
// segment walked before still used, and overwrote them: a million chunks
// came out leaked.
func TestPointerCacheThreadHeaps(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs ptrace permission (run as root)")
	}
	const threads, nodes = 4, 1000000
	_, line := testprog.StartBench(t, "threadheaps", strconv.Itoa(threads), strconv.Itoa(nodes))
	var pid int
	if _, err := fmt.Sscanf(line, "ready %d", &pid); err != nil {
		t.Fatalf("threadheaps said %q", line)
	}
	p, h := attachAndWalk(t, pid)
	if len(h.Arenas) != threads+1 || len(h.Warnings) > 0 {
		t.Fatalf("%d arenas, want %d; warnings %q", len(h.Arenas), threads+1, h.Warnings)
	}
	if n, _ := h.Chunks.CachedPointers(); n < threads*nodes/2 {
		t.Fatalf("%d chunks cached, want most of the %d", n, threads*nodes)
	}
	plain, err := heapwalk.Walk(p, heapwalk.Options{NoPointerCache: true})
	if err != nil {
		t.Fatal(err)
	}
	got, want := Run(p, h, Options{}), Run(p, plain, Options{})
	count := map[Verdict]int{}
	for _, v := range got.Verdicts {
		count[v]++
	}
	if count[Definite]+count[Indirect]+count[Possible] > 0 || count[Reachable] < threads*nodes {
		t.Errorf("with the cache: verdicts %v, want %d chunks reachable and no leak", count, threads*nodes)
	}
	if !slices.Equal(got.Verdicts, want.Verdicts) {
		t.Error("the verdicts differ with and without the cache")
	}
}

// unreadable is a space in which [lo, hi) cannot be read.
type unreadable struct {
	addrspace.Space
	lo, hi addrspace.Addr
}

func (u unreadable) ReadAt(b []byte, a addrspace.Addr) (int, error) {
	if a < u.hi && a+addrspace.Addr(len(b)) > u.lo {
		return 0, addrspace.ErrUnreadable
	}
	return u.Space.ReadAt(b, a)
}

// TestUnreadableChunkWarns: a chunk in use that the walk read but the
// scan cannot is said in a warning, since what only it points to comes
// out leaked.
func TestUnreadableChunkWarns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs ptrace permission (run as root)")
	}
	pid, _ := testprog.StartPaused(t, testprog.Build(t, "graph"))
	p, h := attachAndWalk(t, pid)
	res := Run(p, h, Options{})
	if len(res.Warnings) > 0 {
		t.Fatalf("warnings of a readable heap: %q", res.Warnings)
	}
	// A reachable chunk with pointers, made unreadable: one whose
	// pointers the walk did not cache, which the scan must read.
	h, err := heapwalk.Walk(p, heapwalk.Options{NoPointerCache: true})
	if err != nil {
		t.Fatal(err)
	}
	c := &h.Chunks
	for i := range c.Len() {
		if res.Verdicts[i] == Reachable && !c.NoPointers(i) && c.Size(i) < 4096 {
			res := Run(unreadable{p, c.User(i), c.User(i) + addrspace.Addr(h.Usable(i))}, h, Options{})
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "could not be read during the scan") {
				t.Errorf("chunk %v unreadable: warnings %q", c.Addr(i), res.Warnings)
			}
			return
		}
	}
	t.Fatal("no reachable chunk with pointers")
}

// attachAndWalk attaches to pid until the test ends and walks its heap.
func attachAndWalk(t *testing.T, pid int) (*ptrace.Process, *heapwalk.Heap) {
	t.Helper()
	p, err := ptrace.Attach(pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Detach() })
	h, err := heapwalk.Walk(p, heapwalk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return p, h
}
