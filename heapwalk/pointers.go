package heapwalk

import (
	"encoding/binary"
	mathbits "math/bits"
	"sort"
	"unsafe"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/internal/par"
)

// The pointer cache keeps, for most chunks, the words that the walk found
// could point into a chunk, so that marking does not read those chunks
// again: the walk holds every chunk in its CPU's cache once, and a second
// read of the heap costs as much as the first.
//
// A chunk's cached words are stored as 4 bytes each, as the distance in
// 16-byte units from its segment's start (±32 GiB): the start pointers
// that make up most of a heap's pointers. A chunk is cached only when every
// such word of it can be, it holds at most maxCached of them and none
// points to itself (the word after a self-pointer may be a thread's DTV,
// which the scan recognizes from the pair), and the walk's budget allows:
// at most wordBudget words per chunk walked, so that the cache adds at
// most 8 bytes per chunk to the table. Other chunks are read again by
// the scan, as before.
//
// Each chunk's count of cached words (0 for none) lives in bits 4-6 of its
// state byte, next to noPtrMark (bit 7). The words of a walk's chain lie
// in one slice, in chunk order; once the table is sorted, an index gives
// every 64 chunks the position of their first word in the words of all
// chains taken in address order.
const (
	stateMask  State = 0x0f // the State itself
	countShift       = 4
	countMask  State = 7 << countShift
	maxCached        = 7
	// noPtrMark marks the chunks whose user data holds no word that
	// could point into a chunk.
	noPtrMark State = 0x80
)

// wordBudget bounds the words a chain caches: 2 per chunk, and a few to
// start with.
func wordBudget(chunks int) int { return chunks*2 + 64 }

// wordRun is the cached words of chunks placed from one chain: those of
// the chunks from address lo on, in order.
type wordRun struct {
	lo     uint64 // the first chunk's header address
	base   uint64 // what the words are relative to
	vstart uint64 // where its words start in the words of all runs, in address order
	words  []uint32
}

// cachedCount returns how many words of chunk i's are cached.
func (c *Chunks) cachedCount(i int) int { return int(c.state[i] & countMask >> countShift) }

// countsBefore sums the cached counts of chunks [i&^63, i): in 8 bytes
// at a time.
func (c *Chunks) countsBefore(i int) uint64 {
	g := i &^ 63
	st := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(c.state))), len(c.state))[g:i]
	var sum uint64
	for len(st) >= 8 {
		x := binary.LittleEndian.Uint64(st) >> countShift & 0x0707070707070707
		sum += x * 0x0101010101010101 >> 56
		st = st[8:]
	}
	for _, b := range st {
		sum += uint64(b >> countShift & 7)
	}
	return sum
}

// indexPointers orders the runs by address and indexes the cached words
// of every 64 chunks. It runs once the table is sorted and final. When the
// counts and the runs disagree (which would be a bug), it drops the cache:
// the scan then reads every chunk, and it returns false.
func (c *Chunks) indexPointers() bool {
	c.groupOff = nil
	if len(c.runs) == 0 {
		return true
	}
	sort.Slice(c.runs, func(a, b int) bool { return c.runs[a].lo < c.runs[b].lo })
	var total uint64
	for k := range c.runs {
		c.runs[k].vstart = total
		total += uint64(len(c.runs[k].words))
	}
	n := len(c.state)
	groups := make([]uint64, (n+63)/64+1)
	par.Ranges(n, func(_, lo, hi int) { // par.Grain is a multiple of 64
		for g := lo; g < hi; g += 64 {
			groups[g/64+1] = c.countsBefore(min(g+64, hi)-1) + uint64(c.cachedCount(min(g+64, hi)-1))
		}
	})
	for g := 1; g < len(groups); g++ {
		groups[g] += groups[g-1]
	}
	c.groupOff = groups
	// The run that holds each group's first word, where Pointers starts
	// looking.
	c.groupRun = make([]int32, len(groups))
	r := 0
	for g, v := range groups {
		for r+1 < len(c.runs) && c.runs[r+1].vstart <= v {
			r++
		}
		c.groupRun[g] = int32(r)
	}
	ok := groups[len(groups)-1] == total
	for k := 0; ok && k < len(c.runs); k++ {
		i := c.Index(addrspace.Addr(c.runs[k].lo))
		ok = i >= 0 && c.groupOff[i>>6]+c.countsBefore(i) == c.runs[k].vstart
	}
	if !ok {
		c.dropPointers()
	}
	return ok
}

// dropPointers forgets every cached word.
func (c *Chunks) dropPointers() {
	c.runs, c.groupOff, c.groupRun = nil, nil, nil
	for i := range c.state {
		c.state[i] &^= countMask
	}
}

// Pointers appends to buf the words of chunk i that the walk found could
// point into a chunk, and reports whether it had them cached; when not,
// the chunk must be read. (A PointerCursor is faster for chunks in order.)
func (c *Chunks) Pointers(i int, buf []uint64) ([]uint64, bool) {
	cur := c.PointerCursor()
	return cur.Pointers(i, buf)
}

// A PointerCursor reads the cached words of chunks, fastest in increasing
// order (as marking's lists of a tree allocated level by level come): from
// one chunk to one a little past it, it adds up the counts of the chunks
// between; otherwise it starts from the index of the chunk's group of 64.
type PointerCursor struct {
	c    *Chunks
	next int    // the chunk after the last one read, or -1
	v    uint64 // where its words start in the words of all runs
	run  int    // the run that holds them, or one before it
}

// PointerCursor returns a cursor over the cached words of c.
func (c *Chunks) PointerCursor() PointerCursor { return PointerCursor{c: c, next: -1} }

// Pointers is Chunks.Pointers, fastest when i lies a little past the last
// chunk asked for.
func (p *PointerCursor) Pointers(i int, buf []uint64) ([]uint64, bool) {
	c := p.c
	n := c.cachedCount(i)
	if n == 0 || c.groupOff == nil {
		return buf, false
	}
	if p.next < 0 || i < p.next || i-p.next > 64 {
		p.v = c.groupOff[i>>6] + c.countsBefore(i)
		p.run = int(c.groupRun[i>>6])
	} else {
		for j := p.next; j < i; j++ {
			p.v += uint64(c.cachedCount(j))
		}
	}
	for p.run+1 < len(c.runs) && c.runs[p.run+1].vstart <= p.v {
		p.run++
	}
	r := &c.runs[p.run]
	for _, x := range r.words[p.v-r.vstart:][:n] {
		buf = append(buf, r.base+uint64(int64(int32(x))<<4))
	}
	p.next, p.v = i+1, p.v+uint64(n)
	return buf, true
}

// CachedPointers returns how many chunks have their words cached, and how
// many words that is.
func (c *Chunks) CachedPointers() (chunks, words int) {
	if c.groupOff == nil {
		return 0, 0
	}
	for i := range c.state {
		if c.state[i]&countMask != 0 {
			chunks++
		}
	}
	return chunks, int(c.groupOff[len(c.groupOff)-1])
}

// anyBit reports whether bits [from, to) of mask hold a 1. Small enough
// to be inlined for what most chunks need, two words of mask at most.
func anyBit(mask []uint64, from, to int) bool {
	lo, hi := from>>6, (to-1)>>6
	if to <= from || hi > lo+1 {
		return to > from && anyBitLong(mask, lo, hi, from, to)
	}
	first := mask[lo] & (^uint64(0) << (from & 63))
	last := mask[hi] & (^uint64(0) >> (63 - (to-1)&63))
	if lo == hi {
		return first&last != 0
	}
	return first|last != 0
}

// anyBitLong is anyBit over more than two words of mask.
func anyBitLong(mask []uint64, lo, hi, from, to int) bool {
	if mask[lo]&(^uint64(0)<<(from&63)) != 0 || mask[hi]&(^uint64(0)>>(63-(to-1)&63)) != 0 {
		return true
	}
	for _, m := range mask[lo+1 : hi] {
		if m != 0 {
			return true
		}
	}
	return false
}

// cachePointers returns the state bits for a chunk whose user data the
// walk holds, words [from, to) of its piece, at address at: noPtrMark when
// no word could point into a chunk, its count when its words were appended
// to out.words, 0 when they were not (the chunk must be read again).
func (cw *chainWalker) cachePointers(from, to int, at addrspace.Addr, out *chain) State {
	cand := &cw.w.cand
	if cand.ranges == nil {
		return 0 // nothing known: anything may be a pointer
	}
	limit := wordBudget(len(out.addr))
	if out.roomy {
		limit = min(limit, cap(out.words))
	}
	cache := !cw.w.noCache && len(out.words)+maxCached <= limit
	// Words into the segment itself need no search of the mappings.
	seg, segLen := uint64(cw.start), uint64(cw.end-cw.start)
	mark, n := len(out.words), 0
	ws := addrspace.Words(cw.buf[:cw.n])
	for g := from >> 6; g <= (to-1)>>6; g++ {
		// The words of the chunk in the piece's mask of words in the
		// candidates' bounds.
		m := cw.mask[g]
		if g == from>>6 {
			m &= ^uint64(0) << (from & 63)
		}
		if g == (to-1)>>6 && to&63 != 0 {
			m &= 1<<(to&63) - 1
		}
		for ; m != 0; m &= m - 1 {
			k := g<<6 + mathbits.TrailingZeros64(m)
			v := ws[k]
			if v-seg >= segLen && addrspace.Find(cand.ranges, addrspace.Addr(v)) == nil {
				continue
			}
			d := int64(v - out.base)
			if !cache || n == maxCached || v&15 != 0 || d != int64(int32(d>>4))<<4 || v == uint64(at)+8*uint64(k-from) {
				out.words = out.words[:mark]
				return 0
			}
			out.words = append(out.words, uint32(int32(d>>4)))
			n++
		}
	}
	if n == 0 {
		return noPtrMark
	}
	return State(n) << countShift
}
