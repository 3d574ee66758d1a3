package scan

import (
	"testing"

	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/ptrace"
)

// TestWorkersAgree scans every fixture with 1 to 8 marking workers, again
// and again: the workers share their marks without locks and give work
// to each other, and the verdicts must not depend on how that went.
func TestWorkersAgree(t *testing.T) {
	testprog.EachLiveFixture(t, func(t *testing.T, _ string, pid int, truth *testprog.Truth) {
		p, err := ptrace.Attach(pid)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Detach()
		h, err := heapwalk.Walk(p, heapwalk.Options{})
		if err != nil {
			t.Fatal(err)
		}
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
