package heapwalk

import (
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
)

func TestLayoutForNewer(t *testing.T) {
	_, err := LayoutFor(2, MaxMinor+1)
	if !errors.Is(err, ErrUnknownGlibc) || !strings.Contains(err.Error(), "glibc 2.45 is newer than any glibc heapsift knows") {
		t.Errorf("LayoutFor(2, 45): %v", err)
	}
	if _, err := LayoutFor(2, 42); err != nil {
		t.Errorf("2.42 (layout from source): %v", err)
	}
}

func TestTcacheShapeOf(t *testing.T) {
	for sz, want := range map[uint64]uint64{0x250: 0x250, 0x260: 0x250, 0x290: 0x290, 0x2a0: 0x290, 0x300: 0x300, 0x310: 0x300, 0x270: 0, 0x320: 0} {
		sh, ok := tcacheShapeOf(sz)
		if ok != (want != 0) || sh.chunk != want {
			t.Errorf("tcacheShapeOf(%#x) = %#x %v, want %#x", sz, sh.chunk, ok, want)
		}
	}
}

func TestOtherArenaFamily(t *testing.T) {
	l41, _ := LayoutFor(2, 41)
	l43, _ := LayoutFor(2, 43)
	if o := otherArenaFamily(l41); o.ArenaTop != l43.ArenaTop || o.ArenaNext != l43.ArenaNext || o.NFastbins != 0 ||
		o.ArenaInHeapFirst != l43.ArenaInHeapFirst || o.MpSbrkBase != l41.MpSbrkBase {
		t.Errorf("2.41 to the no-fastbin arena: %+v", o)
	}
	l31, _ := LayoutFor(2, 31)
	back := otherArenaFamily(otherArenaFamily(l31))
	if back.ArenaTop != l31.ArenaTop || back.ArenaInHeapFirst != l31.ArenaInHeapFirst || back.HeapInfoSize != 0x20 {
		t.Errorf("2.31 there and back: %+v", back)
	}
}

func TestSpan(t *testing.T) {
	s := span{27, 42}.and(span{35, 44}).and(span{30, 41})
	if s != (span{35, 41}) || s.String() != "2.35–2.41" || (span{31, 31}).String() != "2.31" {
		t.Errorf("span %v", s)
	}
	if (span{27, 34}).overlaps(span{35, 42}) || !(span{27, 34}).overlaps(span{34, 42}) {
		t.Error("overlaps")
	}
}

// fakeSpace is memory at one anonymous mapping.
type fakeSpace struct {
	base uint64
	mem  []byte
	read atomic.Uint64 // bytes read
}

func (f *fakeSpace) Info() addrspace.Info { return addrspace.Info{} }
func (f *fakeSpace) Mappings() []addrspace.Mapping {
	return []addrspace.Mapping{{Start: addrspace.Addr(f.base), End: addrspace.Addr(f.base + uint64(len(f.mem))), Perm: addrspace.Read | addrspace.Write}}
}
func (f *fakeSpace) Threads() []addrspace.Thread            { return nil }
func (f *fakeSpace) OpenFile(path string) (*os.File, error) { return nil, os.ErrNotExist }
func (f *fakeSpace) Warnings() []string                     { return nil }
func (f *fakeSpace) put(a, v uint64)                        { binary.LittleEndian.PutUint64(f.mem[a-f.base:], v) }
func (f *fakeSpace) ReadAt(p []byte, a addrspace.Addr) (int, error) {
	if uint64(a) < f.base || uint64(a)+uint64(len(p)) > f.base+uint64(len(f.mem)) {
		return 0, addrspace.ErrUnreadable
	}
	f.read.Add(uint64(len(p)))
	return copy(p, f.mem[uint64(a)-f.base:]), nil
}

// TestVoteSafeLinking: the free lists, not the version, settle whether
// links are mangled (a distribution may backport safe-linking, or not).
func TestVoteSafeLinking(t *testing.T) {
	for _, mangled := range []bool{false, true} {
		for _, minor := range []int{31, 36} {
			f := &fakeSpace{base: 0x5550000, mem: make([]byte, 0x10000)}
			l, _ := LayoutFor(2, minor)
			tc := uint64(0x5551010)
			// Three lists: 0x20 holds two chunks, 0x30 and 0x40 one each.
			lists := map[int][]uint64{0: {0x5552010, 0x5552030}, 1: {0x5553010}, 2: {0x5554010}}
			for bin, entries := range lists {
				f.put(tc+l.TcacheEntries+8*uint64(bin), entries[0])
				for i, e := range entries {
					next := uint64(0)
					if i+1 < len(entries) {
						next = entries[i+1]
					}
					if mangled {
						next ^= e >> 12
					}
					f.put(e, next)
				}
			}
			h := &Heap{Layout: l, Tcaches: []Tcache{{Addr: addrspace.Addr(tc)}}}
			w := &walker{s: f, l: l, h: h, maps: f.Mappings()}
			w.voteSafeLinking()
			if w.l.SafeLinking != mangled {
				t.Errorf("2.%d, lists mangled %v: SafeLinking %v", minor, mangled, w.l.SafeLinking)
			}
			if changed := mangled != (minor >= 32); changed != (len(h.Findings) == 1) {
				t.Errorf("2.%d, lists mangled %v: findings %+v", minor, mangled, h.Findings)
			}
		}
	}
}
