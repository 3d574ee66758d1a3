// Package heapwalk lists every chunk of a process's glibc malloc heap: the
// main arena's [heap], every other arena's heaps, and every mmapped chunk,
// and tells which chunks are free (tcache, fastbins, bins, top) and which
// are allocator metadata. It reads through an addrspace.Space, so it works
// the same on a live process and on a core.
package heapwalk

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"

	"github.com/heapsift/heapsift/addrspace"
)

// An Arena is one malloc_state and the heaps it owns.
type Arena struct {
	Addr         addrspace.Addr
	Main         bool
	Mutex        uint32
	Flags        uint32
	Top          addrspace.Addr
	TopSize      uint64
	SystemMem    uint64
	MaxSystemMem uint64
	Attached     uint64
	Heaps        []Segment // [heap] for main_arena; the heaps of a thread arena
}

// A Segment is a range of heap memory.
type Segment struct {
	Start, End addrspace.Addr
}

// A Tcache is one thread's tcache_perthread_struct.
type Tcache struct {
	TID  int
	Addr addrspace.Addr // the struct (the user pointer of its chunk)
}

// Heap is everything the walk found.
type Heap struct {
	Layout   Layout
	Glibc    string // "2.36"
	Banner   string
	Libc     string // the libc module's path
	Arenas   []Arena
	Chunks   Chunks
	Tcaches  []Tcache
	NMmaps   int64 // mp_.n_mmaps, -1 when mp_ was not found
	Findings []Finding
	Warnings []string
}

// Usable returns the usable size of chunk i (what malloc_usable_size says).
func (h *Heap) Usable(i int) uint64 {
	if h.Chunks.Followed(i) {
		// Not mmapped (mmapped chunks are never followed); the size is
		// the distance. The scan asks for every chunk it reads.
		return h.Chunks.addr[i+1] - h.Chunks.addr[i] - 8
	}
	s := h.Chunks.Size(i)
	if h.Chunks.Mmapped(i) && !h.Layout.MmapUsableMinus8 {
		return s - 16
	}
	return s - 8
}

type walker struct {
	s     addrspace.Space
	l     Layout
	h     *Heap
	maps  []addrspace.Mapping
	free  []freeEntry
	mp    uint64 // address of mp_, 0 if unknown
	limit int    // bound on list walks
	// safeVotes counts the free-list links that read as plain and as
	// safe-linked (voteSafeLinking).
	safeVotes [2]int
	cand      candidates
	noCache   bool           // Options.NoPointerCache
	progress  *atomic.Uint64 // bytes of heap read, or nil
	// parts and minPart bound the parallel walk of a segment (see
	// walkSegment); zero means the defaults.
	parts   int
	minPart uint64
	spare   []*chainWalker // walkers done with, whose buffers newChainWalker reuses
}

// candidates are the ranges where chunks can live (anonymous writable
// memory): a word outside them cannot point into a chunk.
type candidates struct {
	lo, span uint64
	ranges   []addrspace.Mapping
}

func newCandidates(maps []addrspace.Mapping) candidates {
	var c candidates
	for i := range maps {
		m := &maps[i]
		if m.Anonymous() && m.Perm&addrspace.Write != 0 {
			c.ranges = append(c.ranges, *m)
		}
	}
	if len(c.ranges) > 0 {
		c.lo = uint64(c.ranges[0].Start)
		c.span = uint64(c.ranges[len(c.ranges)-1].End) - c.lo
	}
	return c
}

type freeEntry struct {
	chunk uint64
	state State
}

// Walk finds glibc's malloc structures in s and lists every chunk.
func Walk(s addrspace.Space, opt Options) (*Heap, error) {
	lc, warns, err := findLibc(s, opt)
	if err != nil {
		return nil, err
	}
	l, ma, inferredHow, err := chooseLayout(s, lc)
	if err != nil {
		return nil, err
	}
	h := &Heap{Layout: l, Glibc: fmt.Sprintf("%d.%d", lc.major, lc.minor), Banner: lc.banner,
		Libc: lc.mod.Path, Warnings: warns, NMmaps: -1}
	w := &walker{s: s, l: l, h: h, maps: s.Mappings(), progress: opt.Progress, parts: opt.parts, minPart: opt.minPart,
		noCache: opt.NoPointerCache}
	w.cand = newCandidates(w.maps)
	slots := 4096
	for _, m := range w.maps {
		if m.Perm&addrspace.Write != 0 {
			w.limit += int(m.Size() / 32)
			// Room for every chunk a walk can find: a heap holds at most
			// one per 16 bytes, and walking it in parts needs one slot
			// more per part.
			slots += int(m.Size()/16) + 64
		}
	}
	h.Chunks.reserve(slots)
	if inferredHow != "" {
		if lc.major == 0 || lc.static {
			h.Glibc = "unknown"
		}
		how := []string{inferredHow}
		if lc.static {
			how = append(how, w.staticArenaChecks(lc, ma)...)
		}
		h.Findings = append(h.Findings, Finding{What: "main_arena", Addr: addrspace.Addr(ma), How: how})
	} else {
		if ma, err = w.findMainArena(lc); err != nil {
			return nil, err
		}
		w.findMp(lc)
	}
	if err := w.readArenas(ma); err != nil {
		return nil, err
	}
	var sp span
	if lc.static {
		sp = w.staticLayout(lc)
	}
	if err := w.checkForeign(lc); err != nil {
		return nil, err
	}
	for i := range h.Arenas {
		w.walkArena(&h.Arenas[i])
	}
	w.findTcaches(lc, inferredHow != "")
	if lc.static {
		w.staticVersion(sp, ma)
	}
	for i := range h.Arenas {
		if h.Arenas[i].Top != 0 { // malloc has never run in a zero arena
			w.readBins(&h.Arenas[i])
		}
	}
	w.findMmapped()
	w.finish()
	return h, nil
}

// chooseLayout picks the layout from the version, or infers it (and finds
// main_arena on the way, how says how) when there is no version to go by
// or no libc file to find main_arena with.
func chooseLayout(s addrspace.Space, lc *libc) (l Layout, ma uint64, how string, err error) {
	if lc.static || lc.major == 0 {
		l, ma, how, err = inferLayout(s, lc)
		if err != nil && lc.static {
			err = notGlibc(lc, err)
		}
		return l, ma, how, err
	}
	if l, err = LayoutFor(lc.major, lc.minor); err != nil {
		return l, 0, "", fmt.Errorf("%s: %w", lc.banner, err)
	}
	if lc.file == nil {
		// The banner came from memory (a core with libc's read-only data)
		// but libc's file is missing: no relocations, no code.
		var ok bool
		if ma, how, ok = findArenaIn(s, lc, l, fmt.Sprintf("glibc %d.%d's layout", lc.major, lc.minor)); !ok {
			return l, 0, "", fmt.Errorf("cannot find main_arena of glibc %d.%d without %s's file: no heap_info and no malloc_state in libc's data", lc.major, lc.minor, lc.mod.Path)
		}
	}
	return l, ma, how, nil
}

// findTcaches finds every thread's tcache and the chunks cached there:
// through libc's TLS slot, or the static executable's TLS block, or else
// by the shape of the tcache structs among the chunks. It settles
// safe-linking from the lists before following them.
func (w *walker) findTcaches(lc *libc, inferred bool) {
	if w.l.TcacheBins == 0 {
		return
	}
	viaTLS := false
	switch {
	case lc.static:
		viaTLS = w.readStaticTcaches(lc)
	case !inferred:
		viaTLS = w.readTcaches(lc)
	}
	if !viaTLS {
		if w.findTcachesByShape(); len(w.h.Tcaches) == 0 && w.h.Chunks.Len() > 0 {
			w.warnf("could not locate the threads' tcaches; chunks cached there will look allocated")
		}
	}
	w.voteSafeLinking()
	if viaTLS && !lc.static {
		for _, tc := range w.h.Tcaches {
			w.readTcache(tc.Addr)
		}
	}
}

// voteSafeLinking checks the layout's safe-linking (2.32+) against the
// first link of every tcache list and fastbin: a plain NULL is 0, a
// mangled one is the link's address >> 12, and a link decodes to a chunk
// in one encoding only. The majority wins, and a change is recorded.
func (w *walker) voteSafeLinking() {
	var mangled, plain int
	vote := func(pos, raw uint64) {
		switch {
		case raw == 0:
			plain++
		case raw == pos>>12:
			mangled++
		default:
			dec := raw ^ (pos >> 12)
			okRaw, okDec := raw&15 == 0 && w.readable(raw), dec&15 == 0 && w.readable(dec)
			if okDec && !okRaw {
				mangled++
			} else if okRaw && !okDec {
				plain++
			}
		}
	}
	for _, tc := range w.h.Tcaches {
		b, err := addrspace.ReadFull(w.s, tc.Addr+addrspace.Addr(w.l.TcacheEntries), 8*w.l.TcacheBins)
		if err != nil {
			continue
		}
		for i := 0; i < w.l.TcacheBins; i++ {
			if e := binary.LittleEndian.Uint64(b[8*i:]); e != 0 && e&15 == 0 {
				if raw, err := w.u64(e); err == nil {
					vote(e, raw)
				}
			}
		}
	}
	for _, ar := range w.h.Arenas {
		for i := 0; i < w.l.NFastbins && ar.Top != 0; i++ {
			p, err := w.u64(uint64(ar.Addr) + uint64(w.l.ArenaFastbins) + 8*uint64(i))
			if err != nil || p == 0 || p&15 != 0 {
				continue
			}
			if raw, err := w.u64(p + 16); err == nil {
				vote(p+16, raw)
			}
		}
	}
	w.safeVotes = [2]int{plain, mangled}
	if mangled == plain {
		return
	}
	if want := mangled > plain; want != w.l.SafeLinking {
		what := map[bool]string{true: "mangled", false: "plain"}
		w.h.Findings = append(w.h.Findings, Finding{What: "safe-linking", How: []string{
			fmt.Sprintf("the free lists' links are %s (%d against %d), although glibc %d.%d's are %s", what[want], max(mangled, plain), min(mangled, plain), w.l.Major, w.l.Minor, what[w.l.SafeLinking])}})
		w.l.SafeLinking = want
	}
}

func (w *walker) warnf(format string, args ...any) {
	w.h.Warnings = append(w.h.Warnings, fmt.Sprintf(format, args...))
}

func (w *walker) u64(a uint64) (uint64, error) { return addrspace.ReadUint64(w.s, addrspace.Addr(a)) }

// inModule reports whether a lies in a file mapping (a module's image).
func (w *walker) inModule(a uint64) bool {
	m := addrspace.Find(w.maps, addrspace.Addr(a))
	return m != nil && m.File()
}

func (w *walker) readable(a uint64) bool {
	m := addrspace.Find(w.maps, addrspace.Addr(a))
	return m != nil && m.Perm&addrspace.Read != 0 && !m.Missing
}

// findMainArena picks the first candidate that validates in memory and
// records every method that agrees with it.
func (w *walker) findMainArena(lc *libc) (uint64, error) {
	cands := mainArenaCandidates(lc, &w.l)
	var chosen uint64
	var how []string
	var rejected []string
	for _, c := range cands {
		if chosen != 0 {
			if c.addr == chosen {
				how = append(how, c.how)
			} else {
				w.warnf("main_arena: %s suggests %#x, which disagrees with %#x", c.how, c.addr, chosen)
			}
			continue
		}
		if err := w.validateArena(c.addr, true); err != nil {
			rejected = append(rejected, fmt.Sprintf("%s: %#x: %v", c.how, c.addr, err))
			continue
		}
		chosen = c.addr
		how = append(how, c.how)
	}
	if chosen == 0 && len(rejected) > 0 {
		// The data may disagree with the version (a distribution
		// backport): try the other malloc_state layout.
		other := otherArenaFamily(w.l)
		saved := w.l
		w.l = other
		for _, c := range cands {
			if w.validateArena(c.addr, true) == nil {
				w.h.Findings = append(w.h.Findings, Finding{What: "malloc_state layout", Addr: addrspace.Addr(c.addr), How: []string{
					fmt.Sprintf("main_arena %s fastbins, unlike glibc %d.%d's: using the arena layout of glibc 2.%d", map[bool]string{true: "has", false: "has no"}[other.NFastbins > 0], saved.Major, saved.Minor, other.Minor)}})
				w.h.Layout = w.l
				w.h.Findings = append(w.h.Findings, Finding{What: "main_arena", Addr: addrspace.Addr(c.addr), How: []string{c.how}})
				return c.addr, nil
			}
		}
		w.l = saved
	}
	if chosen == 0 {
		if len(rejected) == 0 {
			return 0, fmt.Errorf("cannot find main_arena in %s (no debug symbols, no relocation, no code reference)", lc.mod.Path)
		}
		return 0, fmt.Errorf("cannot find main_arena in %s: every candidate failed validation: %v", lc.mod.Path, rejected)
	}
	w.h.Findings = append(w.h.Findings, Finding{What: "main_arena", Addr: addrspace.Addr(chosen), How: how})
	return chosen, nil
}

// validateArena checks that a looks like a malloc_state (§6.3).
func (w *walker) validateArena(a uint64, main bool) error {
	b, err := addrspace.ReadFull(w.s, addrspace.Addr(a), int(w.l.ArenaSize))
	if err != nil {
		return err
	}
	u := func(off uint64) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
	mutex := binary.LittleEndian.Uint32(b[0:])
	flags := binary.LittleEndian.Uint32(b[4:])
	if mutex > 1 && mutex != 2 {
		return fmt.Errorf("mutex %#x", mutex)
	}
	if flags&^3 != 0 {
		return fmt.Errorf("flags %#x", flags)
	}
	top := u(w.l.ArenaTop)
	if top == 0 {
		if !main {
			return fmt.Errorf("no top chunk")
		}
		for off := w.l.ArenaBins; off < w.l.ArenaBins+254*8; off += 8 {
			if u(off) != 0 {
				return fmt.Errorf("no top chunk, but bins")
			}
		}
		return nil // malloc never ran: the zero image
	}
	if top&15 != 0 || !w.readable(top) || (top >= a && top < a+w.l.ArenaSize) || w.inModule(top) {
		return fmt.Errorf("top %#x is not a chunk", top)
	}
	if w.l.NFastbins > 0 {
		// 2.27-2.42: the int have_fastchunks (0 or 1) and a 4-byte hole
		// before fastbinsY; 2.43+ has top there.
		if hf := u(8); hf > 1 {
			return fmt.Errorf("have_fastchunks %#x", hf)
		}
		for i := 0; i < w.l.NFastbins; i++ {
			if p := u(uint64(w.l.ArenaFastbins) + 8*uint64(i)); p != 0 && (p&15 != 0 || !w.readable(p)) {
				return fmt.Errorf("fastbin %d head %#x", i, p)
			}
		}
	}
	// A thread arena's heaps are whole pages; the main arena's sbrk area
	// may start anywhere (a static executable's does).
	if sm, mx := u(w.l.ArenaSystemMem), u(w.l.ArenaMaxSysMem); sm > mx || (!main && sm&0xfff != 0) {
		return fmt.Errorf("system_mem %#x / max %#x", sm, mx)
	}
	if !w.readable(u(w.l.ArenaNext)) {
		return fmt.Errorf("next %#x is not readable", u(w.l.ArenaNext))
	}
	for i := 1; i < 128; i++ {
		hdr := w.l.BinHeader(a, i)
		fd, bk := u(hdr+16-a), u(hdr+24-a)
		if fd == hdr && bk == hdr {
			continue
		}
		if fd&15 != 0 || bk&15 != 0 || !w.readable(fd) || !w.readable(bk) {
			return fmt.Errorf("bin %d links %#x/%#x", i, fd, bk)
		}
	}
	return nil
}

func (w *walker) findMp(lc *libc) {
	for _, c := range mpCandidates(lc, &w.l) {
		base, err := w.u64(c.addr + w.l.MpSbrkBase)
		if err != nil {
			continue
		}
		if base != 0 && !w.readable(base) {
			continue
		}
		w.mp = c.addr
		w.h.Findings = append(w.h.Findings, Finding{What: "mp_", Addr: addrspace.Addr(c.addr), How: []string{c.how}})
		if n, err := w.u64(c.addr + w.l.MpNMmaps); err == nil {
			w.h.NMmaps = int64(uint32(n))
		}
		return
	}
}

// readArenas follows the next ring from main_arena.
func (w *walker) readArenas(ma uint64) error {
	a := ma
	for n := 0; ; n++ {
		if n > 4096 {
			return fmt.Errorf("arena ring from main_arena %#x does not close", ma)
		}
		b, err := addrspace.ReadFull(w.s, addrspace.Addr(a), int(w.l.ArenaSize))
		if err != nil {
			return fmt.Errorf("read arena %#x: %w", a, err)
		}
		u := func(off uint64) uint64 { return binary.LittleEndian.Uint64(b[off:]) }
		ar := Arena{Addr: addrspace.Addr(a), Main: a == ma,
			Mutex: binary.LittleEndian.Uint32(b[0:]), Flags: binary.LittleEndian.Uint32(b[4:]),
			Top: addrspace.Addr(u(w.l.ArenaTop)), SystemMem: u(w.l.ArenaSystemMem), MaxSystemMem: u(w.l.ArenaMaxSysMem)}
		if w.l.ArenaAttached >= 0 {
			ar.Attached = u(uint64(w.l.ArenaAttached))
		}
		if !ar.Main {
			if err := w.validateArena(a, false); err != nil {
				w.warnf("arena %#x on the ring is not valid (%v); skipping it", a, err)
			} else if (a-w.l.HeapInfoSize)&(w.l.HeapMaxSize-1) != 0 {
				w.warnf("arena %#x is not at the start of a heap; skipping it", a)
			} else {
				w.h.Arenas = append(w.h.Arenas, ar)
			}
		} else {
			w.h.Arenas = append(w.h.Arenas, ar)
		}
		if ar.Mutex != 0 {
			w.warnf("arena %#x was locked when frozen (a thread was inside malloc); its lists may be inconsistent", a)
		}
		a = u(w.l.ArenaNext)
		if a == ma {
			return nil
		}
		if a == 0 || !w.readable(a) {
			return fmt.Errorf("arena ring broken at %#x", a)
		}
	}
}

// readTcaches finds each thread's tcache through libc's TLS GOT slot. It
// reports whether the slot was found; every thread's tcache is then known
// (some threads may have none).
func (w *walker) readTcaches(lc *libc) bool {
	if w.l.TcacheBins == 0 {
		return true
	}
	slots, how := tcacheSlots(lc)
	var idle []uint64 // slots that read as "no tcache yet" in every thread
	for _, slot := range slots {
		tp, err := w.u64(slot)
		if err != nil {
			continue
		}
		found, dummies, ok := w.tcachesAt(lc, tp)
		if !ok {
			continue
		}
		if len(found) == 0 {
			if dummies > 0 {
				idle = append(idle, slot)
			}
			if len(slots) > 1 {
				continue
			}
		}
		w.h.Tcaches = found
		w.h.Findings = append(w.h.Findings, Finding{What: "tcache TLS slot", Addr: addrspace.Addr(slot), How: []string{how}})
		return true
	}
	if len(idle) > 0 {
		// 2.43+: no thread has freed anything yet, so every tcache is
		// still glibc's read-only dummy.
		w.h.Findings = append(w.h.Findings, Finding{What: "tcache TLS slot", Addr: addrspace.Addr(idle[0]),
			How: []string{how + "; no thread has a tcache yet (each points at glibc's inactive dummy)"}})
		return true
	}
	return false
}

// tcachesAt reads every thread's tcache pointer at TLS offset tp. ok is
// false when some thread's value is neither a tcache struct nor "none"
// (NULL, or from 2.43 on glibc's dummy in libc's read-only data); dummies
// counts the threads whose value is the dummy.
func (w *walker) tcachesAt(lc *libc, tp uint64) (found []Tcache, dummies int, ok bool) {
	var shape tcacheShape
	defer func() {
		if !ok || shape.chunk == 0 || shape.chunk == w.l.TcacheChunkSize {
			return
		}
		// Not the version's layout: adopt it only if every struct
		// checks out by its contents.
		w.h.Chunks.sort()
		for _, tc := range found {
			if _, good := w.tcacheByShape(tc.Addr, shape, map[bool]int{}); !good {
				found, dummies, ok = nil, 0, false
				return
			}
		}
		w.adoptTcacheShape(shape, found[0].Addr)
	}()
	for _, t := range w.s.Threads() {
		if t.Regs.FsBase == 0 {
			continue
		}
		v, err := w.u64(t.Regs.FsBase + tp)
		if err != nil {
			return nil, 0, false
		}
		if v == 0 {
			if w.l.Minor >= 43 {
				return nil, 0, false // 2.43+ never leaves tcache NULL
			}
			continue
		}
		if w.l.Minor >= 43 && w.isTcacheDummy(lc, v) {
			dummies++
			continue
		}
		sz, err := w.u64(v - 8)
		if err != nil || sz&2 != 0 || v&15 != 0 {
			return nil, 0, false
		}
		sh, ok := tcacheShapeOf(sz &^ 7)
		if !ok || (shape.chunk != 0 && sh.chunk != shape.chunk) {
			return nil, 0, false
		}
		shape = sh
		found = append(found, Tcache{TID: t.TID, Addr: addrspace.Addr(v)})
	}
	return found, dummies, true
}

// isTcacheDummy reports whether v is glibc 2.43+'s __tcache_dummy (or
// dummy+8, "disabled"): all-zero read-only data inside libc.
func (w *walker) isTcacheDummy(lc *libc, v uint64) bool {
	if v < uint64(lc.mod.Start) || v >= uint64(lc.mod.End) || v&7 != 0 {
		return false
	}
	m := addrspace.Find(w.maps, addrspace.Addr(v))
	if m == nil || m.Perm&addrspace.Write != 0 {
		return false
	}
	b, err := addrspace.ReadFull(w.s, addrspace.Addr(v), 0x80)
	if err != nil {
		return m.Missing // a core without libc's read-only data
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (w *walker) readTcache(tc addrspace.Addr) {
	b, err := addrspace.ReadFull(w.s, tc, int(w.l.TcacheEntries)+8*w.l.TcacheBins)
	if err != nil {
		w.warnf("read tcache %v: %v", tc, err)
		return
	}
	for i := 0; i < w.l.TcacheBins; i++ {
		e := binary.LittleEndian.Uint64(b[int(w.l.TcacheEntries)+8*i:])
		for n := 0; e != 0; n++ {
			if n > 65536 || e&15 != 0 {
				w.warnf("tcache %v bin %d: bad entry %#x", tc, i, e)
				break
			}
			w.free = append(w.free, freeEntry{e - 16, FreeTcache})
			next, err := w.u64(e)
			if err != nil {
				w.warnf("tcache %v bin %d: %v", tc, i, err)
				break
			}
			if w.l.SafeLinking {
				next ^= e >> 12
			}
			e = next
		}
	}
}

// readBins records the chunks in an arena's fastbins and bins.
func (w *walker) readBins(ar *Arena) {
	a := uint64(ar.Addr)
	for i := 0; i < w.l.NFastbins; i++ {
		p, err := w.u64(a + uint64(w.l.ArenaFastbins) + 8*uint64(i))
		for n := 0; err == nil && p != 0; n++ {
			if n > w.limit || p&15 != 0 {
				w.warnf("arena %v fastbin %d: bad link %#x", ar.Addr, i, p)
				break
			}
			w.free = append(w.free, freeEntry{p, FreeFastbin})
			var next uint64
			next, err = w.u64(p + 16)
			if w.l.SafeLinking {
				next ^= (p + 16) >> 12
			}
			p = next
		}
		if err != nil {
			w.warnf("arena %v fastbin %d: %v", ar.Addr, i, err)
		}
	}
	for i := 1; i < 128; i++ {
		hdr := w.l.BinHeader(a, i)
		st := FreeLarge
		switch {
		case i == 1:
			st = FreeUnsorted
		case i < 64:
			st = FreeSmall
		}
		p, err := w.u64(hdr + 16)
		for n := 0; err == nil && p != hdr; n++ {
			if n > w.limit || p&15 != 0 || p == 0 {
				w.warnf("arena %v bin %d: bad link %#x", ar.Addr, i, p)
				break
			}
			w.free = append(w.free, freeEntry{p, st})
			p, err = w.u64(p + 16)
		}
		if err != nil {
			w.warnf("arena %v bin %d: %v", ar.Addr, i, err)
		}
	}
}

// walkArena lists the chunks of every heap of an arena.
func (w *walker) walkArena(ar *Arena) {
	if ar.Top == 0 {
		return
	}
	topHdr, err := w.u64(uint64(ar.Top) + 8)
	if err != nil {
		w.warnf("arena %v: top %v: %v", ar.Addr, ar.Top, err)
		return
	}
	ar.TopSize = topHdr &^ 7
	if ar.Main {
		start, ok := w.mainStart(ar)
		if !ok {
			return
		}
		end := ar.Top + addrspace.Addr(ar.TopSize)
		ar.Heaps = append(ar.Heaps, Segment{start, end})
		w.walkSegment(ar, start, end)
		return
	}
	hp := uint64(ar.Top) &^ (w.l.HeapMaxSize - 1)
	for n := 0; hp != 0; n++ {
		if n > 1<<16 {
			w.warnf("arena %v: heap list does not end", ar.Addr)
			return
		}
		info, err := addrspace.ReadFull(w.s, addrspace.Addr(hp), 0x20)
		if err != nil {
			w.warnf("arena %v: heap %#x: %v", ar.Addr, hp, err)
			return
		}
		arPtr := binary.LittleEndian.Uint64(info[0:])
		prev := binary.LittleEndian.Uint64(info[8:])
		size := binary.LittleEndian.Uint64(info[16:])
		if arPtr != uint64(ar.Addr) || size > w.l.HeapMaxSize || prev&(w.l.HeapMaxSize-1) != 0 {
			w.warnf("arena %v: heap %#x has a bad heap_info (ar_ptr %#x, size %#x, prev %#x)", ar.Addr, hp, arPtr, size, prev)
			return
		}
		start := addrspace.Addr(hp + w.l.HeapInfoSize)
		if uint64(ar.Addr) == hp+w.l.HeapInfoSize {
			start = addrspace.Addr(hp + w.l.ArenaInHeapFirst)
		}
		end := addrspace.Addr(hp + size)
		ar.Heaps = append(ar.Heaps, Segment{addrspace.Addr(hp), end})
		w.walkSegment(ar, start, end)
		hp = prev
	}
}

// mainStart returns the first chunk of the main arena: mp_.sbrk_base, or
// derived from top and system_mem when mp_ is unknown.
func (w *walker) mainStart(ar *Arena) (addrspace.Addr, bool) {
	var base uint64
	if w.mp != 0 {
		base, _ = w.u64(w.mp + w.l.MpSbrkBase)
	}
	if base == 0 && ar.Flags&2 == 0 {
		base = uint64(ar.Top) + ar.TopSize - ar.SystemMem
	}
	if base == 0 {
		for _, m := range w.maps {
			if m.Path == "[heap]" {
				base = uint64(m.Start)
			}
		}
	}
	if base == 0 || !w.readable(base) {
		w.warnf("main arena: cannot find where [heap] chunks start")
		return 0, false
	}
	if ar.Flags&2 != 0 {
		w.warnf("main arena is non-contiguous; chunks outside [sbrk_base, top] are not walked")
	}
	return addrspace.Addr(base).AlignUp(16), true
}

// findMmapped scans anonymous private mappings for mmapped chunks (§5.1).
func (w *walker) findMmapped() {
	stacks := map[addrspace.Addr]bool{}
	for _, t := range w.s.Threads() {
		if m := addrspace.Find(w.maps, addrspace.Addr(t.Regs.Rsp)); m != nil {
			stacks[m.Start] = true
		}
	}
	var heaps []Segment
	for _, ar := range w.h.Arenas {
		for _, s := range ar.Heaps {
			if !ar.Main {
				s.End = s.Start + addrspace.Addr(w.l.HeapMaxSize)
			}
			heaps = append(heaps, s)
		}
	}
	found := 0
	for _, m := range w.maps {
		if m.Path != "" || m.Perm&(addrspace.Read|addrspace.Write) != addrspace.Read|addrspace.Write ||
			m.Perm&addrspace.Shared != 0 || m.Missing || stacks[m.Start] {
			continue
		}
		inHeap := false
		for _, s := range heaps {
			if m.Start < s.End && m.End > s.Start {
				inHeap = true
			}
		}
		if inHeap {
			continue
		}
		found += w.scanMapping(m)
	}
	if w.h.NMmaps >= 0 && int64(found) != w.h.NMmaps {
		w.warnf("found %d mmapped chunks, but glibc counts %d", found, w.h.NMmaps)
	}
}

func (w *walker) scanMapping(m addrspace.Mapping) int {
	found := 0
	var hdr [16]byte
	for p := m.Start; p+16 <= m.End; {
		if _, err := w.s.ReadAt(hdr[:], p); err != nil {
			p += 4096
			continue
		}
		prev := binary.LittleEndian.Uint64(hdr[0:])
		size := binary.LittleEndian.Uint64(hdr[8:])
		s := size &^ 7
		span := prev + s // the mapping length
		if w.l.MmapUsableMinus8 {
			span = (prev &^ 1) + s + 16
		}
		if size&7 != 2 || s == 0 || prev != 0 || span%4096 != 0 || span > uint64(m.End-p) { // (p+span may overflow)
			p += 4096
			continue
		}
		c, cs := uint64(p), s
		if rc, rs, ok := w.memalignHeader(uint64(p), s); ok {
			c, cs = rc, rs
		}
		w.h.Chunks.add(c, cs, InUse, true)
		found++
		p += addrspace.Addr(span)
	}
	return found
}

// memalignHeader finds the real header of an aligned mmapped chunk whose
// stale original header sits at the mapping start p (§5.1).
func (w *walker) memalignHeader(p, s uint64) (uint64, uint64, bool) {
	var hdr [16]byte
	for align := uint64(32); align < s; align <<= 1 {
		k := ((p + 16 + align - 1) &^ (align - 1)) - 16 - p
		if k < 32 {
			k += align
		}
		if k >= s {
			break
		}
		if _, err := w.s.ReadAt(hdr[:], addrspace.Addr(p+k)); err != nil {
			continue
		}
		prev := binary.LittleEndian.Uint64(hdr[0:]) &^ 1
		size := binary.LittleEndian.Uint64(hdr[8:])
		if prev == k && size == (s-k)|2 {
			return p + k, s - k, true
		}
	}
	return 0, 0, false
}

// finish sorts the chunks and applies the free lists and tcache structs.
func (w *walker) finish() {
	w.h.Layout = w.l
	c := &w.h.Chunks
	c.sort()
	bad := 0
	for _, f := range w.free {
		i := c.Index(addrspace.Addr(f.chunk))
		if i < 0 {
			bad++
			continue
		}
		switch c.state[i] & stateMask {
		case InUse, FreeOther:
			c.state[i] = c.state[i]&^stateMask | f.state
		}
	}
	if bad > 0 {
		w.warnf("%d free-list entries point outside the walked chunks", bad)
	}
	for _, tc := range w.h.Tcaches {
		if i := c.Index(tc.Addr - 16); i >= 0 {
			c.state[i] = c.state[i]&^stateMask | TcacheStruct
		}
	}
	if !c.indexPointers() {
		w.warnf("internal error: the pointer cache did not add up; the scan reads every chunk instead")
	}
}
