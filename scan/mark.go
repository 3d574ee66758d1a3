package scan

import (
	"encoding/binary"
	"sort"

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
	v          []Verdict
	blocks     []block
	queue      []int32 // blocks with pending chunks
	current    int     // the block being scanned, or -1
	blockBuf   []byte
	lo, hi     uint64 // bounds of all chunks, a cheap pre-filter
	opt        Options
	buf        []byte
	res        *Result
	dataRanges []addrspace.Mapping // read-only module data, where vtables live
}

// Run scans s for references into the chunks of h and classifies every
// in-use chunk.
func Run(s addrspace.Space, h *heapwalk.Heap, opt Options) *Result {
	c := &h.Chunks
	m := &marker{s: s, h: h, c: c, v: make([]Verdict, c.Len()), opt: opt, res: &Result{}, current: -1}
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
	m.markRoots()
	m.classifyLeaks()
	m.res.Verdicts = m.v
	return m.res
}

func (m *marker) markRoots() {
	for _, t := range m.s.Threads() {
		for _, w := range t.Regs.Words() {
			m.consider(w, true, false, false)
		}
		for _, w := range t.VectorWords() {
			m.consider(w, true, false, false)
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
	m.drain()
	for _, r := range m.res.Roots {
		m.scanRange(r.Start, r.End, true, r.InteriorOK)
		m.drain()
	}
}

// scanRange scans [start, end) for pointers, in large reads.
func (m *marker) scanRange(start, end addrspace.Addr, definite, interiorOK bool) {
	start = start.AlignUp(8)
	for a := start; a < end; {
		n := min(uint64(end-a), 1<<20) &^ 7
		if n == 0 {
			break
		}
		if cap(m.buf) < int(n) {
			m.buf = make([]byte, n)
		}
		b := m.buf[:n]
		if _, err := m.s.ReadAt(b, a); err != nil {
			// Scan what can be read, page by page.
			for p := a; p < a+addrspace.Addr(n); p += 4096 {
				pe := min(p.AlignDown(4096)+4096, a+addrspace.Addr(n))
				pb := b[:pe-p]
				if _, err := m.s.ReadAt(pb, p); err == nil {
					m.scanWords(pb, p, definite, interiorOK)
				}
			}
		} else {
			m.scanWords(b, a, definite, interiorOK)
		}
		a += addrspace.Addr(n)
	}
}

func (m *marker) scanWords(b []byte, base addrspace.Addr, definite, interiorOK bool) {
	m.res.ScannedBytes += uint64(len(b))
	lo, hi := m.lo, m.hi
	var prev uint64
	for i := 0; i+8 <= len(b); i += 8 {
		w := binary.LittleEndian.Uint64(b[i:])
		if w >= lo && w < hi {
			// A word that follows a pointer to itself may be a TCB's dtv
			// field (tcbhead_t: tcb, dtv, self).
			m.consider(w, definite, interiorOK, i >= 8 && prev == uint64(base)+uint64(i-8))
		}
		prev = w
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
	if i < 0 || m.v[i] == NotUser {
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
func (m *marker) consider(w uint64, definite, interiorOK, afterSelf bool) {
	i := m.userChunk(w)
	if i < 0 {
		return
	}
	u := uint64(m.c.User(i))
	start := w == u || interiorOK
	if !start && !m.opt.NoHeuristics && m.v[i] != Reachable {
		// glibc's TCB holds a thread's DTV as dtv+1, 16 bytes into its
		// calloc'd chunk; the TCBs of exited threads stay in the stack cache.
		if (afterSelf && w == u+16) || m.heuristic(i, w) {
			start = true
			m.res.Heuristic++
		}
	}
	m.push(i, start, definite)
}

// push upgrades chunk i like valgrind: a start pointer from definitely
// reachable memory makes it reachable; anything else makes it possible.
func (m *marker) push(i int, start, definite bool) {
	switch {
	case m.v[i] == Reachable:
	case start && definite:
		m.v[i] = Reachable
		m.enqueue(i)
	case m.v[i] == Unreached:
		m.v[i] = Possible
		m.enqueue(i)
	}
}

// Blocks group neighbouring chunks so that marking reads the heap in a few
// large reads instead of one per chunk.
const (
	blockMaxChunks = 1 << 14
	blockMaxBytes  = 4 << 20  // one read
	blockMaxGap    = 64 << 10 // a wider gap between chunks starts a new block
)

// block is a run of chunks [first, end) spanning [start, stop) in memory.
type block struct {
	first, end  int32
	start, stop addrspace.Addr
	pending     []int32 // marked chunks waiting to be scanned
	queued      bool
}

// makeBlocks splits the chunk array into blocks.
func (m *marker) makeBlocks() {
	c := m.c
	for i := 0; i < c.Len(); {
		b := block{first: int32(i), start: c.Addr(i)}
		j := i + 1
		for ; j < c.Len() && j-i < blockMaxChunks; j++ {
			end := c.Addr(j) + addrspace.Addr(c.Size(j)) + 8
			if c.Addr(j)-(c.Addr(j-1)+addrspace.Addr(c.Size(j-1))) > blockMaxGap || end-b.start > blockMaxBytes {
				break
			}
		}
		b.end = int32(j)
		b.stop = c.Addr(j-1) + addrspace.Addr(c.Size(j-1)) + 8
		m.blocks = append(m.blocks, b)
		i = j
	}
}

// blockOf returns the block that holds chunk i.
func (m *marker) blockOf(i int) int {
	return sort.Search(len(m.blocks), func(k int) bool { return int(m.blocks[k].end) > i })
}

// enqueue records chunk i for scanning.
func (m *marker) enqueue(i int) {
	k := m.blockOf(i)
	b := &m.blocks[k]
	b.pending = append(b.pending, int32(i))
	if !b.queued && k != m.current {
		b.queued = true
		m.queue = append(m.queue, int32(k))
	}
}

// drain scans every queued chunk, a block at a time: one read per block
// visit, and every chunk that becomes pending inside the block being
// scanned is scanned from the same buffer.
func (m *marker) drain() {
	for len(m.queue) > 0 {
		k := int(m.queue[len(m.queue)-1])
		m.queue = m.queue[:len(m.queue)-1]
		b := &m.blocks[k]
		b.queued = false
		m.current = k
		n := int(b.stop - b.start)
		if cap(m.blockBuf) < n {
			m.blockBuf = make([]byte, n)
		}
		buf := m.blockBuf[:n]
		whole := n <= blockMaxBytes+blockMaxGap
		if whole {
			if _, err := m.s.ReadAt(buf, b.start); err != nil {
				whole = false
			}
		}
		for len(b.pending) > 0 {
			list := b.pending
			b.pending = nil
			for _, ci := range list {
				i := int(ci)
				u := m.c.User(i)
				definite := m.v[i] == Reachable
				if whole {
					off := int(u - b.start)
					m.scanWords(buf[off:off+int(m.h.Usable(i))], u, definite, false)
				} else {
					m.scanRange(u, u+addrspace.Addr(m.h.Usable(i)), definite, false)
				}
			}
			b = &m.blocks[k] // scanning may grow pending
		}
		m.current = -1
	}
}

// heuristic reports whether interior pointer w into chunk i is one that
// C++ or glibc makes on purpose:
//   - new T[n] returns user+8, after the element count (the array cookie);
//   - a pointer to a secondary base of an object with virtual methods
//     points at a vtable pointer, and so does the object's first word.
func (m *marker) heuristic(i int, w uint64) bool {
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
