package heapwalk

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/internal/words"
)

// A heap segment is one chain of chunk headers, each found from the size
// field of the one before, so it seems it must be walked in order, by one
// reader. Big segments are walked in parts at once instead, one part per
// CPU, each by a goroutine that reads its part in cache-sized pieces and
// parses and checks every piece while it is still in that CPU's cache
// (reading on one goroutine and parsing on another made every header a
// cache miss on the other CPU).
//
// Every part but the first starts at a guess: the first address in it
// where a run of headers looks right. The chain is deterministic: once
// the walk of the part before reaches an address that the guessed walk
// also reached, both walks go on identically, so the rest of the guessed
// walk is exactly what a walk in order would have found. When the guess
// was wrong, the walk goes on in order from the exact address, and joins
// the guessed walk where they meet, if they do. The result is the same
// as one walk in order, whatever the memory holds.

const (
	pieceSize = 256 << 10 // one read, small enough to stay in a CPU's cache
	// partsPerCPU is how many parts a big segment is walked in, per CPU.
	partsPerCPU = 8
	// minPart is the smallest part of a segment walked apart.
	minPart = 8 << 20
	// guessWindow bounds where a part's guessed start is looked for.
	guessWindow = 64 << 10
	// guessRun is how many headers in a row must look right for a guess.
	guessRun = 16
)

// A chain is what one walk along chunk headers found.
type chain struct {
	addr  []uint64 // the chunks' header addresses, in order
	state []State  // with their flags (noPtrMark, cached count)
	// next is where the walk stopped: the first chunk at or past its
	// limit, unless stopped.
	next     addrspace.Addr
	lastSize uint64 // the size of the last chunk in addr
	stopped  bool   // the chain ended before its limit (top, a heap's end, an error)
	warn     string // why, when that deserves a warning
	// words are the cached pointers of its chunks (see cachePointers),
	// relative to base; roomy says they are written in the table's
	// room, which they must not outgrow.
	words []uint32
	base  uint64
	roomy bool
}

// chainWalker walks chains of one segment.
type chainWalker struct {
	w          *walker
	ar         *Arena
	start, end addrspace.Addr // the segment
	buf        []byte         // one piece
	base       addrspace.Addr // where buf was read, and its length
	n          int
	err        error
	// mask has a bit per word of buf, set when the word lies within the
	// bounds of the candidates: words that may point into a chunk.
	mask []uint64
}

// newChainWalker returns a walker of segment [start, end), with the
// buffers of a walker of an earlier segment when there is one: a process
// with many thread arenas has hundreds of heaps, each walked in parts.
func (w *walker) newChainWalker(ar *Arena, start, end addrspace.Addr) *chainWalker {
	cw := &chainWalker{w: w, ar: ar, start: start, end: end}
	if n := len(w.spare); n > 0 {
		cw.buf, cw.mask = w.spare[n-1].buf, w.spare[n-1].mask
		w.spare = w.spare[:n-1]
	} else {
		cw.buf, cw.mask = make([]byte, pieceSize), make([]uint64, pieceSize/8/64)
	}
	return cw
}

// doneWith keeps the buffers of walkers whose segment is walked, for the
// next segment.
func (w *walker) doneWith(cws ...*chainWalker) { w.spare = append(w.spare, cws...) }

// load reads the piece that holds [a, a+8).
func (cw *chainWalker) load(a addrspace.Addr) {
	base := max(a&^4095, cw.start)
	n := int(min(uint64(cw.end-base), pieceSize))
	_, cw.err = cw.w.s.ReadAt(cw.buf[:n], base)
	cw.base, cw.n = base, n
	if cw.err == nil {
		words.Mask(addrspace.Words(cw.buf[:n]), cw.w.cand.lo, cw.w.cand.span, cw.mask)
	}
	if cw.w.progress != nil {
		cw.w.progress.Add(uint64(n))
	}
}

// has reports whether the current piece holds [a, a+8).
func (cw *chainWalker) has(a addrspace.Addr) bool {
	return a >= cw.base && a+8 <= cw.base+addrspace.Addr(cw.n) && cw.err == nil
}

// peek returns the word at a: from the current piece, or read alone. The
// guess tries thousands of starts, whose runs may jump anywhere: loading
// whole pieces for them would read the segment over and over.
func (cw *chainWalker) peek(a addrspace.Addr) (uint64, error) {
	if cw.has(a) {
		return binary.LittleEndian.Uint64(cw.buf[a-cw.base:]), nil
	}
	return addrspace.ReadUint64(cw.w.s, a)
}

// walk follows chunk headers from c, appending to out, until the first
// chunk at or past limit, or the end of the chain. When join is not nil,
// the walk also ends at the first chunk that join holds, and returns its
// index there (else -1): that chunk is not appended, but its header's
// PREV_INUSE bit has settled the state of the chunk before it.
func (cw *chainWalker) walk(c, limit addrspace.Addr, out *chain, join []uint64) int {
	ar, end, top := cw.ar, cw.end, cw.ar.Top
	out.base = uint64(cw.start) &^ 15
	known := cw.w.cand.ranges != nil // else any word may be a pointer
	prev := -1                       // index of the previous chunk, whose state waits for our P bit
	for c+16 <= end {
		if !cw.has(c + 8) {
			cw.load(c + 8)
			if cw.err != nil {
				out.stopped, out.next = true, c
				out.warn = fmt.Sprintf("arena %v: chunk %v: %v", ar.Addr, c, cw.err)
				return -1
			}
		}
		buf, base, mask := cw.buf[:cw.n], cw.base, cw.mask
		pend := base + addrspace.Addr(len(buf))
		for c+16 <= end && c+16 <= pend {
			hdr := binary.LittleEndian.Uint64(buf[c+8-base:])
			if prev >= 0 && hdr&1 == 0 && out.state[prev]&stateMask == InUse {
				out.state[prev] = out.state[prev]&^stateMask | FreeOther
			}
			if c >= limit {
				out.next = c
				return -1
			}
			if join != nil {
				if j := sort.Search(len(join), func(i int) bool { return join[i] >= uint64(c) }); j < len(join) && join[j] == uint64(c) {
					out.next = c
					return j
				}
			}
			size := hdr &^ 7
			if c == top {
				if size > uint64(end-c) {
					out.warn = fmt.Sprintf("arena %v: top chunk at %v claims %#x bytes, past the heap's end %v", ar.Addr, c, size, end)
					size = uint64(end - c)
				}
				out.add(c, size, Top)
				out.stopped, out.next = true, c+addrspace.Addr(size)
				return -1
			}
			if size == 0 { // the last fencepost of an old heap
				out.stopped, out.next = true, c
				return -1
			}
			if size&15 != 0 || size > uint64(end-c) || size < 16 { // (c+size may overflow)
				out.stopped, out.next = true, c
				out.warn = fmt.Sprintf("arena %v: corrupt chunk header at %v (size field %#x); the rest of this heap is not walked", ar.Addr, c, hdr)
				return -1
			}
			if size == 16 {
				out.add(c, size, Fencepost)
				prev = -1
				c += addrspace.Addr(size)
				continue
			}
			st := InUse
			if e := c + addrspace.Addr(size) + 8; e <= pend {
				// The chunk's user data lies wholly in this piece: when
				// it holds no word that could point into a chunk, or its
				// words are cached, the scan need not read it.
				if from, to := int(c+16-base)/8, int(e-base)/8; known && !anyBit(mask, from, to) {
					st |= noPtrMark // most chunks of many heaps: no call
				} else {
					st |= cw.cachePointers(from, to, c+16, out)
				}
			}
			out.add(c, size, st)
			prev = len(out.addr) - 1
			c += addrspace.Addr(size)
		}
	}
	out.stopped, out.next = true, c
	if c != end {
		out.warn = fmt.Sprintf("arena %v: walk of %v-%v ended at %v", ar.Addr, cw.start, end, c)
	}
	return -1
}

func (ch *chain) add(c addrspace.Addr, size uint64, st State) {
	ch.addr = append(ch.addr, uint64(c))
	ch.state = append(ch.state, st)
	ch.lastSize = size
}

// plausible reports whether header word hdr, of a chunk at c, could be a
// real chunk header of this segment.
func (cw *chainWalker) plausible(c addrspace.Addr, hdr uint64) bool {
	size := hdr &^ 7
	return hdr&2 == 0 && size >= 32 && size&15 == 0 && c < cw.end && size <= uint64(cw.end-c)
}

// guess returns the first address in [lo, lo+guessWindow) where guessRun
// headers in a row look right (or the chain reaches top or the segment's
// end on the way): where a part's walk starts.
func (cw *chainWalker) guess(lo, hi addrspace.Addr) (addrspace.Addr, bool) {
	if cw.load(lo.AlignUp(16)); cw.err != nil {
		return 0, false
	}
	for c := lo.AlignUp(16); c < min(hi, lo+guessWindow) && c+16 <= cw.end; c += 16 {
		if cw.runFrom(c) {
			return c, true
		}
	}
	return 0, false
}

func (cw *chainWalker) runFrom(c addrspace.Addr) bool {
	var prevSize uint64
	for k := 0; k < guessRun; k++ {
		if c == cw.ar.Top || c == cw.end {
			return k > 0
		}
		if c+16 > cw.end {
			return false
		}
		hdr, err := cw.peek(c + 8)
		if err != nil || !cw.plausible(c, hdr) {
			return false
		}
		if k > 0 && hdr&1 == 0 {
			// The chunk before is free: its size is in our prev_size.
			if ps, err := cw.peek(c); err != nil || ps != prevSize {
				return false
			}
		}
		prevSize = hdr &^ 7
		c += addrspace.Addr(prevSize)
	}
	return true
}

// walkSegment walks chunk headers from start until top or the end, in
// parallel parts when the segment is big and the table has room for it.
func (w *walker) walkSegment(ar *Arena, start, end addrspace.Addr) {
	ch := &w.h.Chunks
	parts := w.parts
	if parts <= 0 {
		// More parts than CPUs: the parts of a heap cost more or less
		// (chunks with pointers to cache, or without), and the CPUs
		// share the parts that are left until the last one ends. On 20M
		// chunks, 8 parts per CPU walked in 780-916 ms, 1 part per CPU in
		// 859-1067 ms.
		parts = partsPerCPU * runtime.GOMAXPROCS(0)
	}
	part := w.minPart
	if part == 0 {
		part = minPart
	}
	parts = min(parts, int(uint64(end-start)/part))
	// Part k covers [bounds[k], bounds[k+1]) and writes its chunks from
	// table slot slots[k]: no part can find more chunks than its bytes
	// over 16, so the parts never overlap, and every chunk's slot is at
	// or past where the chunk ends up.
	bounds := []addrspace.Addr{start}
	for k := 1; k < parts; k++ {
		bounds = append(bounds, (start+addrspace.Addr(uint64(end-start)/uint64(parts)*uint64(k)))&^4095)
	}
	bounds = append(bounds, end)
	slots := []int{ch.Len()}
	for k := range len(bounds) - 1 {
		slots = append(slots, slots[k]+int((bounds[k+1]-bounds[k]+15)/16))
	}
	if parts <= 1 || slots[len(slots)-1] > cap(ch.addr) {
		cw := w.newChainWalker(ar, start, end)
		var out chain
		out.addr, out.state = ch.room()
		out.addr, out.state = out.addr[:0], out.state[:0]
		out.words, out.roomy = ch.takeWords(wordBudget(int((end-start)/16) + 1))
		cw.walk(start, end, &out, nil)
		w.place(&out, 0)
		w.doneWith(cw)
		if out.warn != "" {
			w.warnf("%s", out.warn)
		}
		return
	}
	chains, walkers := w.walkParts(ar, start, end, bounds, slots)
	warn := w.joinParts(chains, walkers, bounds, slots)
	w.doneWith(walkers...)
	if warn != "" {
		w.warnf("%s", warn)
	}
}

// walkParts walks every part at once: the first from the segment's start,
// the others from a guess, each into its slots of the table.
func (w *walker) walkParts(ar *Arena, start, end addrspace.Addr, bounds []addrspace.Addr, slots []int) ([]chain, []*chainWalker) {
	ch := &w.h.Chunks
	chains := make([]chain, len(bounds)-1)
	walkers := make([]*chainWalker, len(chains))
	var wg sync.WaitGroup
	for k := range chains {
		cw := w.newChainWalker(ar, start, end)
		walkers[k] = cw
		out := &chains[k]
		a, s := ch.room()
		lo, hi := slots[k]-ch.Len(), slots[k+1]-ch.Len()
		out.addr, out.state = a[lo:lo:hi], s[lo:lo:hi]
		out.words, out.roomy = ch.takeWords(wordBudget(slots[k+1] - slots[k]))
		wg.Add(1)
		go func() {
			defer wg.Done()
			from := bounds[k]
			if k > 0 {
				var ok bool
				if from, ok = cw.guess(bounds[k], bounds[k+1]); !ok {
					out.stopped = true // nothing to join: the part is walked in order
					return
				}
			}
			cw.walk(from, bounds[k+1], out, nil)
		}()
	}
	wg.Wait()
	return chains, walkers
}

// joinParts places the parts' chunks in the table, in order: the first
// part is exact; each next one is joined where the exact walk reaches it.
// It returns the warning of the walk's end, if any.
func (w *walker) joinParts(chains []chain, walkers []*chainWalker, bounds []addrspace.Addr, slots []int) string {
	ch := &w.h.Chunks
	w.place(&chains[0], 0)
	x, done, warn := chains[0].next, chains[0].stopped, chains[0].warn
	// Every walk whose limit is the segment's end stops there, so the
	// loop ends with done set.
	for k := 1; k < len(chains) && !done; k++ {
		g := &chains[k]
		j := sort.Search(len(g.addr), func(i int) bool { return g.addr[i] >= uint64(x) })
		if j == len(g.addr) || g.addr[j] != uint64(x) {
			// The guess missed: walk in order from x until the guessed
			// walk is met, into memory of its own.
			var exact chain
			j = walkers[k].walk(x, bounds[k+1], &exact, g.addr)
			if j >= 0 && ch.Len()+len(exact.addr) > slots[k]+j {
				// Placing the exact chunks would overwrite the guessed
				// ones still to be joined (the guess found fewer chunks
				// before the meeting point): finish the part in order.
				exact = chain{}
				j = walkers[k].walk(x, bounds[k+1], &exact, nil)
			}
			w.place(&exact, 0)
			if j < 0 {
				x, done, warn = exact.next, exact.stopped, exact.warn
				continue
			}
		}
		w.place(g, j)
		x, done, warn = g.next, g.stopped, g.warn
		// The part's own slots past the table's end now hold nothing
		// needed (its chunks moved down; the later parts lie past them):
		// give their pages back now, not at the end, or every moved part
		// would be in memory twice.
		ch.release(max(ch.Len(), slots[k]), slots[k+1])
	}
	ch.release(ch.Len(), slots[len(slots)-1])
	return warn
}

// place appends the chunks of c from index j on to the table: a move
// within the table's own memory when c was walked there.
func (w *walker) place(c *chain, j int) {
	ch := &w.h.Chunks
	if j >= len(c.addr) {
		return
	}
	// The words of the chunks before j are not placed. (Count them
	// first: the move may overwrite those chunks.)
	skip := 0
	for _, st := range c.state[:j] {
		skip += int(st & countMask >> countShift)
	}
	if skip < len(c.words) {
		ch.runs = append(ch.runs, wordRun{lo: c.addr[j], base: c.base, words: c.words[skip:]})
	}
	ch.appendRun(c.addr[j:], c.state[j:], c.lastSize)
}
