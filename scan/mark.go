package scan

import (
	"encoding/binary"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
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

// Result holds a verdict per chunk (indexed like heap.Chunks).
type Result struct {
	Verdicts []Verdict
	Roots    []Root
	// ScannedBytes counts every byte scanned for pointers.
	ScannedBytes uint64
	// Heuristic counts chunks reached by an interior-pointer rule.
	Heuristic int
	Warnings  []string
}

type marker struct {
	s          addrspace.Space
	h          *heapwalk.Heap
	c          *heapwalk.Chunks
	v          []Verdict // during marking, guarded by the lock of the chunk's block
	blocks     []block
	lo, hi     uint64 // bounds of all chunks, a cheap pre-filter
	opt        Options
	res        *Result
	dataRanges []addrspace.Mapping // read-only module data, where vtables live

	qmu    sync.Mutex // guards queue and active
	qcond  *sync.Cond
	queue  []int32 // blocks with pending chunks
	active int     // workers scanning roots or a block

	scanned   atomic.Uint64
	heuristic atomic.Int64
}

// worker is one marking goroutine's state.
type worker struct {
	m        *marker
	buf      []byte // for root ranges
	blockBuf []byte // one block
	defs     []bool
}

// Run scans s for references into the chunks of h and classifies every
// in-use chunk. Marking runs on opt.Workers goroutines (default: every
// CPU); s must allow concurrent reads.
func Run(s addrspace.Space, h *heapwalk.Heap, opt Options) *Result {
	c := &h.Chunks
	m := &marker{s: s, h: h, c: c, v: make([]Verdict, c.Len()), opt: opt, res: &Result{}}
	m.qcond = sync.NewCond(&m.qmu)
	m.makeBlocks()
	for i := 0; i < c.Len(); i++ {
		if c.State(i) != heapwalk.InUse {
			m.v[i] = NotUser
		}
	}
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
	m.classifyLeaks(&worker{m: m})
	m.res.Verdicts = m.v
	m.res.ScannedBytes = m.scanned.Load()
	m.res.Heuristic = int(m.heuristic.Load())
	return m.res
}

// rootPiece is a part of a root region, the unit of parallel root scans.
type rootPiece struct {
	start, end addrspace.Addr
	interiorOK bool
}

// mark marks everything reachable from the roots: the registers first,
// then the root regions in pieces shared by the workers, and then the
// blocks their marks queued, until no block is pending.
func (m *marker) mark() {
	w0 := &worker{m: m}
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
					m.push(i, true, true)
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
	var next atomic.Int64
	var wg sync.WaitGroup
	m.active = n
	for k := 0; k < n; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{m: m}
			for {
				j := int(next.Add(1) - 1)
				if j >= len(pieces) {
					break
				}
				w.scanRange(pieces[j].start, pieces[j].end, true, pieces[j].interiorOK)
			}
			m.qmu.Lock()
			m.active--
			m.qcond.Broadcast()
			m.qmu.Unlock()
			w.drain()
		}()
	}
	wg.Wait()
}

// scanRange scans [start, end) for pointers, in large reads.
func (w *worker) scanRange(start, end addrspace.Addr, definite, interiorOK bool) {
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
				}
			}
		} else {
			w.scanWords(b, a, definite, interiorOK)
		}
		a += addrspace.Addr(n)
	}
}

func (w *worker) scanWords(b []byte, base addrspace.Addr, definite, interiorOK bool) {
	w.m.scanned.Add(uint64(len(b)))
	if p := w.m.opt.Progress; p != nil {
		p.Add(uint64(len(b)))
	}
	lo, hi := w.m.lo, w.m.hi
	var prev uint64
	for i := 0; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if v >= lo && v < hi {
			// A word that follows a pointer to itself may be a TCB's dtv
			// field (tcbhead_t: tcb, dtv, self).
			w.consider(v, definite, interiorOK, i >= 8 && prev == uint64(base)+uint64(i-8))
		}
		prev = v
	}
}

// userChunk returns the in-use chunk whose user area holds a, or -1.
func (m *marker) userChunk(a uint64) int {
	if a < m.lo || a >= m.hi {
		return -1
	}
	// A user area [c+16, c+size+8) ends inside the next chunk's prev_size
	// field, so look up a-8: it lies in [c+8, c+size+8).
	i := m.c.Containing(addrspace.Addr(a - 8))
	if i < 0 || m.c.State(i) != heapwalk.InUse {
		return -1
	}
	u := uint64(m.c.User(i))
	if a < u || a >= u+m.h.Usable(i) {
		return -1
	}
	// The next chunk's header address is what glibc itself holds (top,
	// bins, registers inside malloc); it is not a pointer into chunk i.
	if a == uint64(m.c.Addr(i))+m.c.Size(i) {
		return -1
	}
	return i
}

// consider handles one word found in memory reached with the given
// certainty. afterSelf says the word follows a word that points to itself,
// as a thread's dtv field follows tcbhead_t.tcb.
func (w *worker) consider(v uint64, definite, interiorOK, afterSelf bool) {
	m := w.m
	i := m.userChunk(v)
	if i < 0 {
		return
	}
	u := uint64(m.c.User(i))
	start := v == u || interiorOK
	if !start && !m.opt.NoHeuristics && m.verdict(i) != Reachable {
		// glibc's TCB holds a thread's DTV as dtv+1, 16 bytes into its
		// calloc'd chunk; the TCBs of exited threads stay in the stack cache.
		if (afterSelf && v == u+16) || m.isHeuristic(i, v) {
			start = true
			m.heuristic.Add(1)
		}
	}
	m.push(i, start, definite)
}

func (m *marker) verdict(i int) Verdict {
	b := &m.blocks[m.blockOf(i)]
	b.mu.Lock()
	v := m.v[i]
	b.mu.Unlock()
	return v
}

// push upgrades chunk i like valgrind: a start pointer from definitely
// reachable memory makes it reachable; anything else makes it possible.
// An upgraded chunk waits in its block to be scanned.
func (m *marker) push(i int, start, definite bool) {
	k := m.blockOf(i)
	b := &m.blocks[k]
	b.mu.Lock()
	changed := false
	switch {
	case m.v[i] == Reachable:
	case start && definite:
		m.v[i] = Reachable
		changed = true
	case m.v[i] == Unreached:
		m.v[i] = Possible
		changed = true
	}
	queue := false
	if changed {
		b.pending = append(b.pending, int32(i))
		if b.state == blockIdle {
			b.state = blockQueued
			queue = true
		}
	}
	b.mu.Unlock()
	if queue {
		m.qmu.Lock()
		m.queue = append(m.queue, int32(k))
		m.qcond.Signal()
		m.qmu.Unlock()
	}
}

// Blocks group neighbouring chunks so that marking reads the heap in a few
// large reads instead of one per chunk, and so that workers share the work.
const (
	blockMaxChunks = 1 << 14
	blockMaxBytes  = 4 << 20  // one read
	blockMaxGap    = 64 << 10 // a wider gap between chunks starts a new block
)

// Block states.
const (
	blockIdle   = iota
	blockQueued // in the queue
	blockBusy   // a worker is scanning its pending chunks
)

// block is a run of chunks [first, end) spanning [start, stop) in memory.
type block struct {
	mu          sync.Mutex // guards pending, state and the verdicts of its chunks
	first, end  int32
	start, stop addrspace.Addr
	pending     []int32 // marked chunks waiting to be scanned
	state       uint8
}

// makeBlocks splits the chunk array into blocks.
func (m *marker) makeBlocks() {
	c := m.c
	for i := 0; i < c.Len(); {
		first, start := i, c.Addr(i)
		j := i + 1
		for ; j < c.Len() && j-i < blockMaxChunks; j++ {
			end := c.Addr(j) + addrspace.Addr(c.Size(j)) + 8
			if c.Addr(j)-(c.Addr(j-1)+addrspace.Addr(c.Size(j-1))) > blockMaxGap || end-start > blockMaxBytes {
				break
			}
		}
		m.blocks = append(m.blocks, block{first: int32(first), end: int32(j), start: start,
			stop: c.Addr(j-1) + addrspace.Addr(c.Size(j-1)) + 8})
		i = j
	}
}

// blockOf returns the block that holds chunk i.
func (m *marker) blockOf(i int) int {
	return sort.Search(len(m.blocks), func(k int) bool { return int(m.blocks[k].end) > i })
}

// drain takes queued blocks until no worker has anything left to mark.
func (w *worker) drain() {
	m := w.m
	for {
		m.qmu.Lock()
		for len(m.queue) == 0 && m.active > 0 {
			m.qcond.Wait()
		}
		if len(m.queue) == 0 {
			m.qcond.Broadcast()
			m.qmu.Unlock()
			return
		}
		k := int(m.queue[len(m.queue)-1])
		m.queue = m.queue[:len(m.queue)-1]
		m.active++
		m.qmu.Unlock()

		w.scanBlock(k)

		m.qmu.Lock()
		m.active--
		if m.active == 0 {
			m.qcond.Broadcast()
		}
		m.qmu.Unlock()
	}
}

// scanBlock reads block k once and scans its pending chunks, including
// those that become pending while it works, from that buffer.
func (w *worker) scanBlock(k int) {
	m := w.m
	b := &m.blocks[k]
	b.mu.Lock()
	b.state = blockBusy
	b.mu.Unlock()
	n := int(b.stop - b.start)
	whole := n <= blockMaxBytes+blockMaxGap
	var buf []byte
	if whole {
		if cap(w.blockBuf) < n {
			w.blockBuf = make([]byte, n)
		}
		buf = w.blockBuf[:n]
		if _, err := m.s.ReadAt(buf, b.start); err != nil {
			whole = false
		}
	}
	for {
		b.mu.Lock()
		if len(b.pending) == 0 {
			b.state = blockIdle
			b.mu.Unlock()
			return
		}
		list := b.pending
		b.pending = nil
		w.defs = w.defs[:0]
		for _, ci := range list {
			w.defs = append(w.defs, m.v[ci] == Reachable)
		}
		b.mu.Unlock()
		for j, ci := range list {
			i := int(ci)
			u := m.c.User(i)
			if whole {
				off := int(u - b.start)
				w.scanWords(buf[off:off+int(m.h.Usable(i))], u, w.defs[j], false)
			} else {
				w.scanRange(u, u+addrspace.Addr(m.h.Usable(i)), w.defs[j], false)
			}
		}
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
