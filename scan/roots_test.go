package scan

import (
	"testing"

	"github.com/heapsift/heapsift/heapwalk"
)

func TestSubtract(t *testing.T) {
	roots := []Root{{Kind: RootAnon, Start: 0x1000, End: 0x9000}, {Kind: RootData, Start: 0x10000, End: 0x11000}}
	ranges := []heapwalk.Segment{{Start: 0x2000, End: 0x3000}, {Start: 0x8000, End: 0x10800}}
	got := subtract(roots, ranges)
	want := []Root{{Kind: RootAnon, Start: 0x1000, End: 0x2000}, {Kind: RootAnon, Start: 0x3000, End: 0x8000},
		{Kind: RootData, Start: 0x10800, End: 0x11000}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("piece %d = %v, want %v", i, got[i], want[i])
		}
	}
}
