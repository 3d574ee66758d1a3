package scan

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/par"
)

// Verdict is what the scan concluded about one chunk.
type Verdict uint8

// Verdicts. NotUser marks chunks that are not allocations (free chunks,
// top, fenceposts, tcache structs).
const (
	Unreached Verdict = iota // in use, not (yet) reached
	Possible                 // reached only through interior pointers
	Reachable
	Definite // leaked, nothing outside its own cycle points to it
	Indirect // leaked, pointed to by other leaked chunks
	NotUser
)

var verdictNames = [...]string{"unreached", "possible", "reachable", "definite", "indirect", "not a user chunk"}

// String names v.
func (v Verdict) String() string { return verdictNames[v] }

// Options tune the scan.
type Options struct {
	// NoHeuristics turns off the interior-pointer rules that recognize
	// new[] arrays, secondary C++ bases and glibc's DTV as reachable.
	NoHeuristics bool
	// Workers is how many goroutines mark (0: one per CPU).
	Workers int
	// Progress, when set, counts the bytes scanned so far, for a progress
	// display running in another goroutine.
	Progress *atomic.Uint64
}

// Total is a number of chunks and their usable bytes.
type Total struct{ Chunks, Bytes uint64 }

func (t *Total) add(bytes uint64) { t.Chunks++; t.Bytes += bytes }

// Result holds a verdict per chunk (indexed like heap.Chunks).
type Result struct {
	Verdicts []Verdict
	// InUse and Reachable total the chunks in use and the reachable ones
	// (most chunks): a report need only total the others.
	InUse, Reachable Total
	Roots            []Root
	// ScannedBytes counts every byte scanned for pointers (also from the
	// walk's cache of a chunk's pointers; a chunk found possibly, then
	// definitely reachable may count twice).
	ScannedBytes uint64
	// ReadBytes counts every byte read from the target: a block of the
	// heap may be read more than once when marks reach it again later.
	ReadBytes uint64
	// Heuristic counts chunks reached by an interior-pointer rule.
	Heuristic int
	// RootsTime is how long indexing the chunks by address, finding the
	// roots and scanning them took (registers, then root regions, until
	// the last one was scanned), and
	// MarkTime the rest: scanning what they reached, and classifying the
	// leaks. Workers start marking as soon as no root region is left for
	// them, so the two overlap a little.
	RootsTime, MarkTime time.Duration
	Warnings            []string
}

type marker struct {
	s          addrspace.Space
	h          *heapwalk.Heap
	c          *heapwalk.Chunks
	v          []Verdict       // set from marks once marking is done
	marks      []atomic.Uint32 // while marking: markPossible and markReachable, 2 bits per chunk
	blocks     []block
	bstart     []uint64 // blocks' start addresses, for lookups by address
	granules   []int32  // per block, per granule: the first chunk that ends past the granule's start
	lo, hi     uint64   // bounds of all chunks, a cheap pre-filter
	opt        Options
	res        *Result
	dataRanges []addrspace.Mapping // read-only module data, where vtables live

	qmu     sync.Mutex // guards queue and idle
	qcond   *sync.Cond
	queue   [][]int32    // marked chunks that a worker gave away, to scan
	idle    int          // workers waiting for work
	waiting atomic.Int32 // idle, to read without the lock
	workers int

	scanned   atomic.Uint64
	read      atomic.Uint64
	heuristic atomic.Int64
	rootsDone atomic.Int64  // when the last root region was scanned (Unix ns)
	unread    atomic.Uint64 // bytes of chunks in use that could not be read
}

// Mark bits, two per chunk: reached through anything, and reached by a
// start pointer from definitely reachable memory.
const (
	markPossible  = 1
	markReachable = 2
)

// worker is one marking goroutine's state. The chunks it marks, it scans
// itself, unless another worker runs out of work: marking takes no lock.
type worker struct {
	m        *marker
	buf      []byte // for root ranges
	blockBuf []byte // one batch of chunks
	reqs     []addrspace.Req
	offs     []int // where each chunk of a batch sits in blockBuf
	defs     []bool
	next     []int32  // chunks marked, waiting to be scanned
	wins     windows  // memory around the last chunks scanned alone
	cur      cursor   // where the last lookup ended
	spare    []int32  // the list scanned last, to reuse
	ptrs     []uint64 // a chunk's cached pointers
	// pcur reads them: lists in address order (as those of a tree
	// allocated level by level are) read the cache in order.
	pcur heapwalk.PointerCursor

	scanned, published uint64 // bytes scanned, and how many of them are in marker.scanned

}

// Run scans s for references into the chunks of h and classifies every
// in-use chunk. Marking runs on opt.Workers goroutines (default: every
// CPU); s must allow concurrent reads.
func Run(s addrspace.Space, h *heapwalk.Heap, opt Options) *Result {
	start := time.Now()
	c := &h.Chunks
	m := &marker{s: s, h: h, c: c, marks: make([]atomic.Uint32, (c.Len()+15)/16), opt: opt, res: &Result{}}
	m.qcond = sync.NewCond(&m.qmu)
	m.makeBlocks()
	if c.Len() > 0 {
		m.lo = uint64(c.Addr(0))
		m.hi = uint64(c.Addr(c.Len()-1)) + c.Size(c.Len()-1)
	}
	for _, mp := range s.Mappings() {
		if mp.File() && mp.Perm&addrspace.Write == 0 {
			m.dataRanges = append(m.dataRanges, mp)
		}
	}
	m.res.Roots = Roots(s, h)
	m.mark()
	m.verdicts()
	m.marks = nil
	m.classifyLeaks(m.newWorker())
	m.res.Verdicts = m.v
	m.res.ScannedBytes = m.scanned.Load()
	m.res.ReadBytes = m.read.Load()
	m.res.Heuristic = int(m.heuristic.Load())
	if n := m.unread.Load(); n > 0 {
		// The walk read these chunks; now they cannot be read. Whatever
		// they point to may be reported as leaked.
		m.res.Warnings = append(m.res.Warnings, fmt.Sprintf("%d bytes of chunks in use could not be read during the scan: "+
			"chunks that only they point to are reported as leaked", n))
	}
	m.res.RootsTime = time.Duration(m.rootsDone.Load()) - time.Duration(start.UnixNano())
	m.res.MarkTime = time.Since(start) - m.res.RootsTime
	return m.res
}

// verdicts turns the marks into verdicts, on every CPU, and totals the
// chunks in use and the reachable ones.
func (m *marker) verdicts() {
	c := m.c
	m.v = make([]Verdict, c.Len())
	type part struct{ inUse, reachable Total }
	parts := make([]part, (len(m.v)+par.Grain-1)/par.Grain)
	par.Ranges(len(m.v), func(_, lo, hi int) {
		p := &parts[lo/par.Grain]
		var inUse, reachable Total // in locals: most chunks add to them
		v := m.v[lo:hi]
		for k := range v {
			i := lo + k
			if c.State(i) != heapwalk.InUse {
				v[k] = NotUser
				continue
			}
			usable := m.h.Usable(i)
			inUse.add(usable)
			switch mk := m.marked(i); {
			case mk&markReachable != 0:
				v[k] = Reachable
				reachable.add(usable)
			case mk != 0:
				v[k] = Possible
			}
		}
		p.inUse, p.reachable = inUse, reachable
	})
	for _, p := range parts {
		m.res.InUse.Chunks += p.inUse.Chunks
		m.res.InUse.Bytes += p.inUse.Bytes
		m.res.Reachable.Chunks += p.reachable.Chunks
		m.res.Reachable.Bytes += p.reachable.Bytes
	}
}

// rootPiece is a part of a root region, the unit of parallel root scans.
type rootPiece struct {
	start, end addrspace.Addr
	interiorOK bool
}

// mark marks everything reachable from the roots: the registers first,
// then the root regions in pieces shared by the workers, and then what
// their marks reach, until no worker has anything left to scan.
func (m *marker) mark() {
	w0 := m.newWorker()
	for _, t := range m.s.Threads() {
		for _, v := range t.Regs.Words() {
			w0.consider(v, true, false, false)
		}
		for _, v := range t.VectorWords() {
			w0.consider(v, true, false, false)
		}
		if !m.opt.NoHeuristics && t.Regs.FsBase != 0 {
			// glibc's TCB holds the thread's DTV as dtv+1, 16 bytes into
			// its calloc'd chunk.
			if dtv, err := addrspace.ReadUint64(m.s, addrspace.Addr(t.Regs.FsBase+8)); err == nil && dtv >= 16 {
				if i := m.userChunk(dtv - 16); i >= 0 && dtv == uint64(m.c.User(i))+16 {
					w0.push(i, true, true)
				}
			}
		}
	}
	var pieces []rootPiece
	for _, r := range m.res.Roots {
		for a := r.Start; a < r.End; a += blockMaxBytes {
			pieces = append(pieces, rootPiece{a, min(a+blockMaxBytes, r.End), r.InteriorOK})
		}
	}
	n := m.opt.Workers
	if n <= 0 {
		n = runtime.GOMAXPROCS(0)
	}
	m.workers = n
	if len(w0.next) > 0 {
		m.queue = append(m.queue, w0.next)
	}
	var next, done atomic.Int64
	m.rootsDone.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := m.newWorker()
			for {
				j := int(next.Add(1) - 1)
				if j >= len(pieces) {
					break
				}
				w.scanRange(pieces[j].start, pieces[j].end, true, pieces[j].interiorOK)
				if done.Add(1) == int64(len(pieces)) {
					m.rootsDone.Store(time.Now().UnixNano())
				}
			}
			w.drain()
			w.publish()
		}()
	}
	wg.Wait()
}

// scanRange scans [start, end) for pointers, in large reads.
// It returns how many bytes it could not read.
func (w *worker) scanRange(start, end addrspace.Addr, definite, interiorOK bool) (unread uint64) {
	m := w.m
	start = start.AlignUp(8)
	for a := start; a < end; {
		n := min(uint64(end-a), 1<<20) &^ 7
		if n == 0 {
			break
		}
		if cap(w.buf) < int(n) {
			w.buf = make([]byte, n)
		}
		b := w.buf[:n]
		if _, err := m.s.ReadAt(b, a); err != nil {
			// Scan what can be read, page by page.
			for p, pe := a, a; p < a+addrspace.Addr(n); p = pe {
				pe = min(p.AlignDown(4096)+4096, a+addrspace.Addr(n))
				pb := b[:pe-p]
				if _, err := m.s.ReadAt(pb, p); err == nil {
					w.scanWords(pb, p, definite, interiorOK)
				} else {
					unread += uint64(len(pb))
				}
			}
		} else {
			w.scanWords(b, a, definite, interiorOK)
		}
		a += addrspace.Addr(n)
	}
	return unread
}

func (w *worker) scanWords(b []byte, base addrspace.Addr, definite, interiorOK bool) {
	w.count(uint64(len(b)))
	lo, span := w.m.lo, w.m.hi-w.m.lo
	words := addrspace.Words(b)
	for i, v := range words {
		if v-lo >= span {
			continue
		}
		// A word that follows a pointer to itself may be a TCB's dtv
		// field (tcbhead_t: tcb, dtv, self).
		afterSelf := i >= 1 && words[i-1] == uint64(base)+uint64(8*(i-1))
		w.consider(v, definite, interiorOK, afterSelf)
	}
}

// newWorker returns a worker of m.
func (m *marker) newWorker() *worker { return &worker{m: m, pcur: m.c.PointerCursor()} }

// publish adds what the worker scanned since the last call to the totals.
func (w *worker) publish() {
	d := w.scanned - w.published
	w.published = w.scanned
	w.m.scanned.Add(d)
	if p := w.m.opt.Progress; p != nil {
		p.Add(d)
	}
}

// userChunk returns the in-use chunk whose user area holds a, or -1.
func (m *marker) userChunk(a uint64) int {
	var c cursor
	return m.lookup(a, &c)
}

// A cursor remembers where the last lookup ended: pointers found one
// after another often point to chunks that lie one after another (arrays
// of pointers to objects allocated in turn), and a lookup that starts
// there skips the search.
type cursor struct {
	block, chunk int
}

// lookup returns the in-use chunk whose user area holds a, or -1: the
// block (the cursor's, or by binary search), then from the granule index
// or the cursor, whichever is nearer.
func (m *marker) lookup(a uint64, cur *cursor) int {
	if a < m.lo || a >= m.hi {
		return -1
	}
	// A user area [c+16, c+size+8) ends inside the next chunk's prev_size
	// field, so look up a-8: it lies in [c+8, c+size+8).
	q := a - 8
	bs := m.bstart
	k := cur.block
	if k >= len(bs) || bs[k] > q || q >= uint64(m.blocks[k].stop) {
		lo, hi := 0, len(bs)
		for lo < hi {
			mid := int(uint(lo+hi) >> 1)
			if bs[mid] <= q {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		k = lo - 1
		if k < 0 || q >= uint64(m.blocks[k].stop) {
			return -1
		}
		cur.block = k
	}
	b := &m.blocks[k]
	t := m.c
	i := int(m.granules[b.granules+int32((q-bs[k])>>granuleShift)])
	if j := cur.chunk; j > i && j < int(b.end) && uint64(t.Addr(j)) <= q {
		i = j
	}
	for i+1 < int(b.end) && uint64(t.Addr(i+1)) <= q {
		i++
	}
	cur.chunk = i
	c := uint64(t.Addr(i))
	if q < c || t.State(i) != heapwalk.InUse {
		return -1
	}
	// Most chunks are followed by the next one: their size is the
	// distance, and only mmapped chunks (which are never followed) have
	// another usable size.
	var size, usable uint64
	if t.Followed(i) {
		size = uint64(t.Addr(i+1)) - c
		usable = size - 8
	} else {
		size = t.Size(i)
		usable = m.h.Usable(i)
	}
	// A user area is [c+16, c+size+8) (c+size, less for some mmapped
	// chunks; see heapwalk.Heap.Usable); the next chunk's header
	// address, c+size, is what glibc itself holds (top, bins, registers
	// inside malloc), not a pointer into chunk i.
	if q >= c+size || a < c+16 || a == c+size || a-c-16 >= usable {
		return -1
	}
	return i
}

// consider handles one word found in memory reached with the given
// certainty. afterSelf says the word follows a word that points to itself,
// as a thread's dtv field follows tcbhead_t.tcb.
func (w *worker) consider(v uint64, definite, interiorOK, afterSelf bool) {
	m := w.m
	i := m.lookup(v, &w.cur)
	if i < 0 {
		return
	}
	u := uint64(m.c.User(i))
	start := v == u || interiorOK
	if !start && !m.opt.NoHeuristics && m.marked(i)&markReachable == 0 {
		// glibc's TCB holds a thread's DTV as dtv+1, 16 bytes into its
		// calloc'd chunk; the TCBs of exited threads stay in the stack cache.
		if (afterSelf && v == u+16) || m.isHeuristic(i, v) {
			start = true
			m.heuristic.Add(1)
		}
	}
	w.push(i, start, definite)
}

// marked returns chunk i's mark bits.
func (m *marker) marked(i int) uint32 {
	return m.marks[i>>4].Load() >> (uint(i&15) * 2) & 3
}

// push marks chunk i like valgrind: a start pointer from definitely
// reachable memory makes it reachable; anything else makes it possible.
// A chunk whose mark changed waits in the worker's list to be scanned.
func (w *worker) push(i int, start, definite bool) {
	word, sh := &w.m.marks[i>>4], uint(i&15)*2
	cur := word.Load() >> sh & 3
	if cur&markReachable != 0 {
		return
	}
	if start && definite {
		if word.Or(markReachable<<sh)>>sh&markReachable != 0 {
			return
		}
	} else if cur != 0 || word.Or(markPossible<<sh)>>sh&3 != 0 {
		return
	}
	w.next = append(w.next, int32(i))
}

// Blocks group chunks that follow each other, for lookups by address.
const (
	blockMaxChunks = 1 << 14
	blockMaxBytes  = 4 << 20 // one read
	granuleShift   = 10      // lookups by address index each 1 KiB granule of a block
)

// block is a run of chunks [first, end) spanning [start, stop) in memory.
type block struct {
	first, end  int32
	start, stop addrspace.Addr
	granules    int32 // where its granule index starts in marker.granules
}

// makeBlocks splits the chunk array into blocks and indexes their
// granules, on every CPU: a part of the array per worker, each split on its
// own (a block never spans two parts, which costs nothing), then the
// granules of every block.
func (m *marker) makeBlocks() {
	count := m.c.Len()
	parts := make([][]block, (count+par.Grain-1)/par.Grain)
	par.Ranges(count, func(_, lo, hi int) {
		parts[lo/par.Grain] = m.blocksOf(lo, hi)
	})
	for _, p := range parts {
		m.blocks = append(m.blocks, p...)
	}
	m.bstart = make([]uint64, len(m.blocks))
	n := 0
	for k := range m.blocks {
		b := &m.blocks[k]
		m.bstart[k] = uint64(b.start)
		b.granules = int32(n)
		n += int((b.stop-b.start-1)>>granuleShift) + 1
	}
	m.granules = make([]int32, n) // each: the last chunk of its block that starts at or before the granule
	par.RangesOf(len(m.blocks), 8, func(_, lo, hi int) {
		for k := lo; k < hi; k++ {
			m.indexGranules(&m.blocks[k])
		}
	})
}

// blocksOf splits chunks [first, end) into blocks: each a run of chunks
// that follow each other, at most blockMaxChunks of them in at most
// blockMaxBytes, found by a search in the run, not chunk by chunk.
func (m *marker) blocksOf(first, end int) []block {
	c := m.c
	chunkEnd := func(i int) uint64 { return uint64(c.Addr(i)) + c.Size(i) }
	var out []block
	for i := first; i < end; {
		start := uint64(c.Addr(i))
		limit := c.RunEnd(i, min(end, i+blockMaxChunks)-1) + 1
		// The first chunk past i that would end the block too far.
		j := i + 1 + sort.Search(limit-i-1, func(k int) bool { return chunkEnd(i+1+k)+8-start > blockMaxBytes })
		out = append(out, block{first: int32(i), end: int32(j), start: addrspace.Addr(start),
			stop: addrspace.Addr(chunkEnd(j-1) + 8)})
		i = j
	}
	return out
}

// indexGranules fills block b's granule index: for each granule, the last
// chunk of the block that starts at or before it, where a lookup moves on
// from.
func (m *marker) indexGranules(b *block) {
	g := m.granules[b.granules:]
	i := int(b.first)
	for gi := range int((b.stop-b.start-1)>>granuleShift) + 1 {
		gs := b.start + addrspace.Addr(gi)<<granuleShift
		for i+1 < int(b.end) && m.c.Addr(i+1) <= gs {
			i++
		}
		g[gi] = int32(i)
	}
}

// Work sharing: a worker gives half of its list away when another worker
// waits and the list holds at least 2*minShare chunks; a list scanned at
// once holds at most maxList.
const (
	minShare = 64
	maxList  = 1 << 16
	// bigChunk: bigger chunks are read in pieces, not whole into a buffer.
	bigChunk = 1 << 20
)

// drain scans the chunks the worker marks, and those others give it,
// until no worker has anything left to scan.
func (w *worker) drain() {
	m := w.m
	for {
		if len(w.next) == 0 && !w.take() {
			return
		}
		// Scan the list (at most maxList of it) while new marks go to a
		// second list; the two swap.
		if m.waiting.Load() > 0 && len(w.next) >= 2*minShare {
			half := append([]int32(nil), w.next[len(w.next)/2:]...)
			w.next = w.next[:len(w.next)/2]
			m.qmu.Lock()
			m.queue = append(m.queue, half)
			m.qcond.Signal()
			m.qmu.Unlock()
		}
		if n := len(w.next); n > maxList {
			// Take the last maxList into the spare list; new marks
			// overwrite where they were.
			w.spare = append(w.spare[:0], w.next[n-maxList:]...)
			w.next = w.next[:n-maxList]
			w.scanList(w.spare)
			continue
		}
		list := w.next
		w.next = w.spare[:0]
		w.scanList(list)
		w.spare = list[:0]
	}
}

// take waits for a list another worker gave away; false means that every
// worker waits: marking is done.
func (w *worker) take() bool {
	m := w.m
	m.qmu.Lock()
	defer m.qmu.Unlock()
	m.idle++
	m.waiting.Store(int32(m.idle))
	for len(m.queue) == 0 && m.idle < m.workers {
		m.qcond.Wait()
	}
	if len(m.queue) == 0 {
		m.qcond.Broadcast()
		return false
	}
	w.next = append(w.next, m.queue[len(m.queue)-1]...)
	m.queue = m.queue[:len(m.queue)-1]
	m.idle--
	m.waiting.Store(int32(m.idle))
	return true
}

// scanList scans the given marked chunks, in address order: big ones in
// pieces, the others read in batches.
func (w *worker) scanList(list []int32) {
	m := w.m
	// First what needs no read, in any order: chunks the walk found
	// without pointers, or whose pointers it cached, and big ones. A chunk
	// marked possible, then reachable, may be in the list twice: it is
	// scanned twice when the two are not next to each other.
	k, prev := 0, int32(-1)
	for _, ci := range list {
		i := int(ci)
		if ci == prev {
			continue
		}
		prev = ci
		switch usable := m.h.Usable(i); {
		case m.c.NoPointers(i):
			// The walk scanned it already and found nothing.
			w.count(usable)
			continue
		case w.fromCache(i, usable, m.marked(i)&markReachable != 0):
			continue
		case usable > bigChunk:
			u := m.c.User(i)
			m.read.Add(usable)
			m.unread.Add(w.scanRange(u, u+addrspace.Addr(usable), m.marked(i)&markReachable != 0, false))
			continue
		}
		list[k] = ci
		k++
	}
	// The others are read, in address order.
	list = list[:k]
	slices.Sort(list)
	list = slices.Compact(list) // marked twice: possible, then reachable
	w.defs = w.defs[:0]
	for _, ci := range list {
		w.defs = append(w.defs, m.marked(int(ci))&markReachable != 0)
	}
	// Marking that follows a chain (a linked list, a path down a tree)
	// brings one chunk at a time, and one read per chunk costs more than
	// the chunk: a window of the memory around it serves the next links
	// too, when they lie near (as they do when allocated one after another).
	// A few windows serve a few chains followed at once. Long lists are
	// read in batches anyway.
	if len(list) <= windowBatch {
		list = w.fromWindows(list)
		for len(list) > 0 && w.wins.wanted() && w.loadWindow(int(list[0])) {
			list = w.fromWindows(list)
		}
	}
	if len(list) > 0 {
		w.scanChunks(list)
	}
}

// fromCache scans chunk i from the words the walk cached for it, and
// reports whether it had them.
//
// When the chunk's pointers marked exactly one new chunk, and that chunk's
// pointers are cached too, it is scanned at once, and so on: a linked list
// is followed link by link, without a list of one chunk per link.
func (w *worker) fromCache(i int, usable uint64, definite bool) bool {
	m := w.m
	var ok bool
	if w.ptrs, ok = w.pcur.Pointers(i, w.ptrs[:0]); !ok {
		return false
	}
	for {
		n0 := len(w.next)
		w.count(usable)
		for _, v := range w.ptrs {
			w.consider(v, definite, false, false)
		}
		if len(w.next) != n0+1 {
			return true
		}
		j := int(w.next[n0])
		if w.ptrs, ok = w.pcur.Pointers(j, w.ptrs[:0]); !ok {
			return true // it stays listed, to be read
		}
		w.next = w.next[:n0]
		usable, definite = m.h.Usable(j), m.marked(j)&markReachable != 0
	}
}

// count adds n bytes to those the worker scanned.
func (w *worker) count(n uint64) {
	// Counted per worker, and published now and then: a shared counter
	// updated per chunk would bounce its cache line between the CPUs.
	w.scanned += n
	if w.scanned-w.published >= 1<<20 {
		w.publish()
	}
}

// A window is memory a worker read around a chunk it had to scan alone,
// kept for the chunks marked next.
type window struct {
	buf  []byte
	base addrspace.Addr
	n    int
	hits int // chunks it served
	used int // when it last served one (windows.clock)
}

// windows are a worker's windows, and whether loading them pays.
type windows struct {
	w      [windowCount]window
	clock  int
	misses int // windows in a row replaced after serving fewer than two chunks
	skip   int // small batches to read exactly, after windows that did not pay
}

// Window parameters: how many a worker keeps, their size, the largest
// batch of chunks they are loaded for, and how many small batches are read
// exactly after windows stop paying (when chains jump around the heap).
const (
	windowCount = 4
	windowSize  = 32 << 10
	windowBatch = 4
	windowPause = 1024
)

// wanted says whether to load a window for a small batch.
func (ws *windows) wanted() bool {
	if ws.skip > 0 {
		ws.skip--
		return false
	}
	return true
}

// fromWindows scans the chunks of list (with their certainties in w.defs)
// that lie in a window, and returns the others.
func (w *worker) fromWindows(list []int32) []int32 {
	m, ws := w.m, &w.wins
	k := 0
next:
	for j, ci := range list {
		u := m.c.User(int(ci))
		ue := u + addrspace.Addr(m.h.Usable(int(ci)))
		for x := range ws.w {
			win := &ws.w[x]
			if win.n > 0 && u >= win.base && ue <= win.base+addrspace.Addr(win.n) {
				w.scanWords(win.buf[u-win.base:ue-win.base], u, w.defs[j], false)
				win.hits++
				ws.clock++
				win.used = ws.clock
				continue next
			}
		}
		list[k] = ci
		w.defs[k] = w.defs[j]
		k++
	}
	w.defs = w.defs[:k]
	return list[:k]
}

// loadWindow reads a window around chunk i, within its block (memory
// known to hold chunks), in place of the least recently used one, and
// reports whether it holds the chunk.
func (w *worker) loadWindow(i int) bool {
	m, ws := w.m, &w.wins
	win := &ws.w[0]
	for x := range ws.w {
		if ws.w[x].used < win.used {
			win = &ws.w[x]
		}
	}
	if win.n > 0 {
		if win.hits < 2 {
			if ws.misses++; ws.misses >= 2*windowCount {
				ws.skip, ws.misses = windowPause, 0
			}
		} else {
			ws.misses = 0
		}
	}
	u := m.c.User(i)
	ue := u + addrspace.Addr(m.h.Usable(i))
	k := sort.Search(len(m.bstart), func(k int) bool { return m.bstart[k] > uint64(u) }) - 1
	win.n, win.hits = 0, 0
	if k < 0 || ue-u > windowSize/4 {
		return false
	}
	b := &m.blocks[k]
	base := max(b.start, (u - windowSize/2).AlignDown(4096))
	n := int(min(uint64(b.stop-base), windowSize))
	if cap(win.buf) < windowSize {
		win.buf = make([]byte, windowSize)
	}
	m.read.Add(uint64(n))
	if _, err := m.s.ReadAt(win.buf[:n], base); err != nil || ue > base+addrspace.Addr(n) {
		return false
	}
	ws.clock++
	win.base, win.n, win.used = base, n, ws.clock
	return true
}

// scanChunks reads the given chunks (in address order, none bigger than
// bigChunk; w.defs holds their certainties) in batches (one system call each for a
// live process), in address order, neighbours within maxGap of each other
// in one range (for process_vm_readv, every range costs a page lookup),
// and scans them.
func (w *worker) scanChunks(list []int32) {
	const maxGap = 512
	m := w.m
	br, batched := m.s.(addrspace.BatchReader)
	defs := w.defs
	for len(list) > 0 {
		if cap(w.blockBuf) < blockMaxBytes {
			w.blockBuf = make([]byte, blockMaxBytes)
		}
		buf := w.blockBuf[:cap(w.blockBuf)]
		// One pass over the chunks, while the buffer and the request
		// count allow: the ranges to read, and where each chunk sits in
		// buf.
		w.reqs, w.offs = w.reqs[:0], w.offs[:0]
		n, size := 0, 0
		var end addrspace.Addr // where the last range ends
		for ; n < len(list); n++ {
			u := m.c.User(int(list[n]))
			ue := u + addrspace.Addr(m.h.Usable(int(list[n])))
			join := n > 0 && u >= end && u-end <= maxGap
			grow := int(ue - u)
			if join {
				grow = int(ue - end)
			}
			if n > 0 && (size+grow > len(buf) || (!join && len(w.reqs) == 1024)) {
				break
			}
			if join {
				r := &w.reqs[len(w.reqs)-1]
				r.Buf = buf[size-len(r.Buf) : size+grow : size+grow]
			} else {
				w.reqs = append(w.reqs, addrspace.Req{Addr: u, Buf: buf[size : size+grow : size+grow]})
			}
			w.offs = append(w.offs, size+grow-int(ue-u))
			size += grow
			end = ue
		}
		m.read.Add(uint64(size))
		if batched {
			br.ReadBatch(w.reqs)
		} else {
			for i := range w.reqs {
				r := &w.reqs[i]
				_, r.Err = m.s.ReadAt(r.Buf, r.Addr)
			}
		}
		failed := false
		for _, r := range w.reqs {
			failed = failed || r.Err != nil
		}
		for j, ci := range list[:n] {
			u := m.c.User(int(ci))
			usable := int(m.h.Usable(int(ci)))
			if failed {
				// Read what can be read, range by range.
				m.unread.Add(w.scanRange(u, u+addrspace.Addr(usable), defs[j], false))
				continue
			}
			w.scanWords(buf[w.offs[j]:w.offs[j]+usable], u, defs[j], false)
		}
		list = list[n:]
		defs = defs[n:]
	}
}

// isHeuristic reports whether interior pointer w into chunk i is one that
// C++ or glibc makes on purpose:
//   - new T[n] returns user+8, after the element count (the array cookie);
//   - a pointer to a secondary base of an object with virtual methods
//     points at a vtable pointer, and so does the object's first word.
func (m *marker) isHeuristic(i int, w uint64) bool {
	u := uint64(m.c.User(i))
	usable := m.h.Usable(i)
	first, err := addrspace.ReadUint64(m.s, addrspace.Addr(u))
	if err != nil {
		return false
	}
	if w == u+8 && first > 0 && first <= (usable-8) && first < 1<<32 {
		return true
	}
	if w%8 == 0 && m.isVptr(first) {
		if at, err := addrspace.ReadUint64(m.s, addrspace.Addr(w)); err == nil && m.isVptr(at) {
			return true
		}
	}
	return false
}

// isVptr reports whether v points into read-only data of a module, where
// vtables live.
func (m *marker) isVptr(v uint64) bool {
	if v&7 != 0 {
		return false
	}
	mp := addrspace.Find(m.dataRanges, addrspace.Addr(v))
	return mp != nil && mp.Perm&addrspace.Exec == 0
}
