package heapwalk

import (
	"encoding/binary"
	"fmt"

	"github.com/heapsift/heapsift/addrspace"
)

// Core-only mode: when neither libc's file nor its version banner is
// available (a core from another machine, without its binaries), the
// layout is inferred from the data itself.

// families are the malloc_state layouts to try, each named by a release
// that has it: 2.35-2.42 (heap_info 0x30), 2.27-2.34 (heap_info 0x20),
// 2.43+ (no fastbins).
var families = []struct {
	minor int
	name  string
}{{41, "2.35-2.42"}, {34, "2.27-2.34"}, {43, "2.43-2.44"}}

// inferLayout finds main_arena and the layout family without a version:
// thread arenas sit right after a heap_info at a 64 MiB-aligned heap start,
// and the member of their ring that is not in a heap is main_arena; with a
// single arena, main_arena is the malloc_state in libc's data whose next
// points to itself.
func inferLayout(s addrspace.Space, lc *libc) (Layout, uint64, string, error) {
	for _, fam := range families {
		l, _ := LayoutFor(2, fam.minor)
		if a, how, ok := findArenaIn(s, lc, l, fam.name+" layout"); ok {
			return l, a, how, nil
		}
	}
	return Layout{}, 0, "", fmt.Errorf("cannot find main_arena without libc's file: no heap_info and no malloc_state in %s", dataName(lc))
}

// dataName names where main_arena lives.
func dataName(lc *libc) string {
	if lc.static {
		return "the executable's data"
	}
	return "libc's data"
}

// findArenaIn finds main_arena in memory alone, with layout l (named for
// the finding): from a thread arena's ring, or as a self-linked
// malloc_state in libc's (a static executable's) data.
func findArenaIn(s addrspace.Space, lc *libc, l Layout, name string) (uint64, string, bool) {
	maps := s.Mappings()
	w := &walker{s: s, l: l, maps: maps}
	var heapArenas []uint64
	for _, m := range maps {
		if uint64(m.Start)%l.HeapMaxSize != 0 || m.Path != "" || m.Perm&addrspace.Write == 0 {
			continue
		}
		if ar, err := w.u64(uint64(m.Start)); err == nil && ar == uint64(m.Start)+l.HeapInfoSize {
			heapArenas = append(heapArenas, ar)
		}
	}
	for _, ar := range heapArenas {
		a := ar
		for n := 0; n < 4096; n++ {
			next, err := w.u64(a + l.ArenaNext)
			if err != nil || next == ar {
				break
			}
			if (next-l.HeapInfoSize)%l.HeapMaxSize != 0 {
				if w.validateArena(next, true) == nil {
					return next, fmt.Sprintf("the arena ring of the heap at %#x (%s)", ar-l.HeapInfoSize, name), true
				}
				break
			}
			a = next
		}
	}
	for _, m := range lc.mod.Mappings {
		if m.Perm&addrspace.Write == 0 || m.Size() > 64<<20 {
			continue
		}
		b, err := addrspace.ReadFull(s, m.Start, int(m.Size()))
		if err != nil {
			continue
		}
		for off := uint64(0); off+l.ArenaSize <= uint64(len(b)); off += 8 {
			a := uint64(m.Start) + off
			if binary.LittleEndian.Uint64(b[off+l.ArenaNext:]) != a || binary.LittleEndian.Uint64(b[off+l.ArenaTop:]) == 0 {
				continue
			}
			if w.validateArena(a, true) == nil {
				return a, fmt.Sprintf("a self-linked malloc_state in %s (%s)", dataName(lc), name), true
			}
		}
	}
	return 0, "", false
}

// A tcacheShape is one layout of tcache_perthread_struct.
type tcacheShape struct {
	chunk   uint64 // its chunk size
	bins    int
	count   int    // bytes per count (0: num_slots, not a count)
	entries uint64 // offset of entries[]
	from    int    // the first glibc 2.minor with it
}

// tcacheShapes are the tcache_perthread_struct layouts (§4.1).
var tcacheShapes = []tcacheShape{{0x250, 64, 1, 0x40, 26}, {0x290, 64, 2, 0x80, 30}, {0x300, 76, 0, 0x98, 42}}

// tcacheShapeOf returns the layout of a tcache struct in a chunk of size
// sz. malloc may hand out a chunk 16 bytes larger than asked for (when the
// rest would be too small to split off), as 2.43+, which creates the
// tcache at the first free, often does.
func tcacheShapeOf(sz uint64) (tcacheShape, bool) {
	for _, sh := range tcacheShapes {
		if sz == sh.chunk || sz == sh.chunk+16 {
			return sh, true
		}
	}
	return tcacheShape{}, false
}

// adoptTcacheShape makes the layout follow the tcache struct found at tc
// when the version's expected one differs (a distribution backport).
func (w *walker) adoptTcacheShape(sh tcacheShape, tc addrspace.Addr) {
	if sh.chunk == w.l.TcacheChunkSize {
		return
	}
	w.h.Findings = append(w.h.Findings, Finding{What: "tcache layout", Addr: tc,
		How: []string{fmt.Sprintf("the tcache struct's chunk is %#x, not %#x as in glibc %d.%d: using the layout of glibc 2.%d (a backport?)",
			sh.chunk, w.l.TcacheChunkSize, w.l.Major, w.l.Minor, sh.from)}})
	w.l.TcacheChunkSize, w.l.TcacheBins, w.l.TcacheEntries = sh.chunk, sh.bins, sh.entries
	w.l.TcacheCountSize = max(sh.count, 2)
	w.h.Layout = w.l
}

// findTcachesByShape finds tcache_perthread_structs among the in-use
// chunks when libc's TLS slot cannot be used: a chunk of a tcache struct's
// size whose every list holds chunks of its bin's size, as many as the
// counts say. An all-empty one counts only as the first chunk of a heap,
// where glibc puts it. It also settles safe-linking from the lists.
func (w *walker) findTcachesByShape() {
	c := &w.h.Chunks
	c.sort()
	first := map[uint64]bool{}
	for _, ar := range w.h.Arenas {
		for _, sg := range ar.Heaps {
			start := uint64(sg.Start)
			if ar.Main {
				first[start] = true
			} else {
				first[start+w.l.HeapInfoSize] = true
				first[start+w.l.ArenaInHeapFirst] = true
			}
		}
	}
	votes := map[bool]int{}
	for i := 0; i < c.Len(); i++ {
		if c.State(i) != InUse {
			continue
		}
		for _, sh := range tcacheShapes {
			if c.Size(i) != sh.chunk && c.Size(i) != sh.chunk+16 {
				continue
			}
			entries, ok := w.tcacheByShape(c.User(i), sh, votes)
			if !ok || (len(entries) == 0 && !first[uint64(c.Addr(i))]) {
				continue
			}
			w.h.Tcaches = append(w.h.Tcaches, Tcache{Addr: c.User(i)})
			w.free = append(w.free, entries...)
			w.l.TcacheChunkSize, w.l.TcacheBins, w.l.TcacheEntries = sh.chunk, sh.bins, sh.entries
		}
	}
	if votes[true] != votes[false] {
		w.l.SafeLinking = votes[true] > votes[false]
	}
	if len(w.h.Tcaches) > 0 {
		w.h.Findings = append(w.h.Findings, Finding{What: "tcache", Addr: w.h.Tcaches[0].Addr,
			How: []string{fmt.Sprintf("%d tcache struct(s) by chunk shape", len(w.h.Tcaches))}})
	}
	w.h.Layout = w.l
}

// tcacheByShape checks one candidate struct of layout sh and returns its
// cached chunks: every list holds chunks of its bin's size, as many as the
// count says (2.42+: as many as the bin's free slots leave).
func (w *walker) tcacheByShape(tc addrspace.Addr, sh tcacheShape, votes map[bool]int) ([]freeEntry, bool) {
	b, err := addrspace.ReadFull(w.s, tc, int(sh.entries)+8*sh.bins)
	if err != nil {
		return nil, false
	}
	fill := w.tcacheFill()
	c := &w.h.Chunks
	var out []freeEntry
	local := map[bool]int{}
	for i := 0; i < sh.bins; i++ {
		want := uint64(0x20 + 16*i)
		sizeOK := func(sz uint64) bool { return sz == want || (i >= 64 && sz > 0x410) }
		e := binary.LittleEndian.Uint64(b[int(sh.entries)+8*i:])
		n := 0
		for ; e != 0 && n <= 64; n++ {
			k := c.Index(addrspace.Addr(e - 16))
			if e&15 != 0 || k < 0 || !sizeOK(c.Size(k)) {
				return nil, false
			}
			out = append(out, freeEntry{e - 16, FreeTcache})
			raw, err := w.u64(e)
			if err != nil {
				return nil, false
			}
			dec := raw ^ (e >> 12)
			isChunk := func(u uint64) bool {
				k := c.Index(addrspace.Addr(u - 16))
				return u&15 == 0 && k >= 0 && sizeOK(c.Size(k))
			}
			switch {
			case raw == 0 && dec != 0, raw != 0 && isChunk(raw) && !isChunk(dec):
				local[false]++
				e = raw
			case dec == 0, isChunk(dec):
				local[true]++
				e = dec
			default:
				return nil, false
			}
		}
		if n > 64 {
			return nil, false
		}
		switch sh.count {
		case 1:
			if uint64(b[i]) != uint64(n) {
				return nil, false
			}
		case 2:
			if uint64(binary.LittleEndian.Uint16(b[2*i:])) != uint64(n) {
				return nil, false
			}
		default: // num_slots: free slots left in an enabled small bin
			if slots := int(binary.LittleEndian.Uint16(b[2*i:])); i < 64 && fill > 0 && slots+n != fill {
				return nil, false
			}
		}
	}
	for k, v := range local {
		votes[k] += v
	}
	return out, true
}

// tcacheFill is the tcache's chunks per bin: mp_.tcache_count when mp_ is
// known, else the version's default.
func (w *walker) tcacheFill() int {
	if w.mp != 0 && w.l.MpTcacheCount >= 0 {
		if n, err := w.u64(w.mp + uint64(w.l.MpTcacheCount)); err == nil && n > 0 && n < 1<<16 {
			return int(n)
		}
	}
	return w.l.TcacheFillCount
}
