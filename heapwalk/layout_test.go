package heapwalk

import (
	"testing"

	"github.com/heapsift/heapsift/addrspace"
)

// The offsets below are the verified ones of ../shared/docs/glibc-malloc.md.
func TestLayouts(t *testing.T) {
	cases := []struct {
		minor                                         int
		top, bins, next, systemMem, arenaSize, first  uint64
		heapInfo, sbrkBase, tcacheEntries, tcacheSize uint64
		fastbins                                      int
		safe                                          bool
	}{
		{31, 0x60, 0x70, 0x870, 0x888, 0x898, 0x8c0, 0x20, 0x48, 0x80, 0x290, 10, false},
		{36, 0x60, 0x70, 0x870, 0x888, 0x898, 0x8d0, 0x30, 0x60, 0x80, 0x290, 10, true},
		{41, 0x60, 0x70, 0x870, 0x888, 0x898, 0x8d0, 0x30, 0x60, 0x80, 0x290, 10, true},
		{43, 0x8, 0x18, 0x818, 0x830, 0x840, 0x870, 0x30, 0x68, 0x98, 0x300, 0, true},
		{44, 0x8, 0x18, 0x818, 0x830, 0x840, 0x870, 0x30, 0x68, 0x98, 0x300, 0, true},
	}
	for _, c := range cases {
		l, err := LayoutFor(2, c.minor)
		if err != nil {
			t.Fatal(err)
		}
		got := []uint64{l.ArenaTop, l.ArenaBins, l.ArenaNext, l.ArenaSystemMem, l.ArenaSize, l.ArenaInHeapFirst,
			l.HeapInfoSize, l.MpSbrkBase, l.TcacheEntries, l.TcacheChunkSize}
		want := []uint64{c.top, c.bins, c.next, c.systemMem, c.arenaSize, c.first, c.heapInfo, c.sbrkBase, c.tcacheEntries, c.tcacheSize}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("2.%d field %d = %#x, want %#x", c.minor, i, got[i], want[i])
			}
		}
		if l.NFastbins != c.fastbins || l.SafeLinking != c.safe {
			t.Errorf("2.%d fastbins %d safe %v", c.minor, l.NFastbins, l.SafeLinking)
		}
	}
	// The unsorted bin header is the well-known main_arena+0x60 (2.27-2.42)
	// and arena+0x8 on 2.43+.
	if l, _ := LayoutFor(2, 36); l.BinHeader(0x1000, 1) != 0x1060 {
		t.Errorf("2.36 unsorted header %#x", l.BinHeader(0x1000, 1))
	}
	if l, _ := LayoutFor(2, 43); l.BinHeader(0x1000, 1) != 0x1008 {
		t.Errorf("2.43 unsorted header %#x", l.BinHeader(0x1000, 1))
	}
	for _, v := range [][2]int{{2, 26}, {2, 45}, {3, 0}} {
		if _, err := LayoutFor(v[0], v[1]); err == nil {
			t.Errorf("glibc %d.%d accepted", v[0], v[1])
		}
	}
}

func TestChunksLookup(t *testing.T) {
	var c Chunks
	c.add(0x1030, 0x20, InUse, false)
	c.add(0x1000, 0x30, InUse, false)
	c.add(0x2000, 0x10000, InUse, true)
	c.sort()
	if c.Addr(0) != 0x1000 || !c.Mmapped(2) || c.Mmapped(0) {
		t.Fatalf("sort: %v %v", c.Addr(0), c.Mmapped(2))
	}
	for a, want := range map[uint64]int{0x1000: 0, 0x102f: 0, 0x1030: 1, 0x104f: 1, 0x1050: -1, 0x2000: 2, 0x11fff: 2, 0x12000: -1} {
		if got := c.Containing(addrFrom(a)); got != want {
			t.Errorf("Containing(%#x) = %d, want %d", a, got, want)
		}
	}
	if c.Index(0x1030) != 1 || c.Index(0x1031) != -1 {
		t.Errorf("Index")
	}
}

func addrFrom(a uint64) addrspace.Addr { return addrspace.Addr(a) }
