package heapwalk

import (
	mathbits "math/bits"
	"runtime"
	"slices"
	"sort"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/internal/par"
)

// State says what a chunk is, in glibc's terms.
type State uint8

// Chunk states. Every chunk that is not InUse is allocator-owned.
const (
	InUse        State = iota // allocated by the program
	FreeTcache                // in a thread's tcache (looks in use)
	FreeFastbin               // in a fastbin (looks in use)
	FreeUnsorted              // in the unsorted bin
	FreeSmall                 // in a small bin
	FreeLarge                 // in a large bin
	FreeOther                 // free (next chunk's PREV_INUSE clear) but in no list
	Top                       // an arena's top chunk
	Fencepost                 // heap-end marker
	TcacheStruct              // a thread's tcache_perthread_struct
	numStates
)

var stateNames = [numStates]string{"in use", "tcache", "fastbin", "unsorted", "small bin", "large bin",
	"free (unbinned)", "top", "fencepost", "tcache struct"}

// String names s.
func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return "invalid"
}

// Free reports whether s is free memory of any kind (top included).
func (s State) Free() bool { return s >= FreeTcache && s <= Top }

// Chunks is every chunk of the heap, sorted by address, stored so that
// tens of millions of chunks stay small (9 bytes and a few bits each): a
// chunk's size is the distance to the next chunk, except for the last
// chunk of each contiguous run (a heap's top, an mmapped chunk), whose
// size is kept apart.
type Chunks struct {
	addr  []uint64 // chunk header address
	state []State
	ends  bits              // chunk i's size is in endSize, not addr[i+1]-addr[i]
	mm    bits              // chunk i is an mmapped chunk
	endSz map[uint64]uint64 // header address → size, for the chunks in ends
	// lastSize is the size of the chunk added last, until the next add
	// (or sort) tells whether the next chunk follows it.
	lastSize uint64
	// mem, when the table was reserved, owns the memory that addr and
	// state use (see reserve).
	mem *tableMem
	// runs, groupOff and groupRun are the pointer cache (see
	// pointers.go): the cached words of each chain placed, and per 64
	// chunks where their words start.
	runs      []wordRun
	groupOff  []uint64
	groupRun  []int32 // per 64 chunks, the run of their first word
	wordsNext int     // the room for words given out so far (takeWords)
}

// tableMem is memory mapped for a chunk table, unmapped once no Chunks
// refers to it any more. The garbage collector does not see slices of
// memory mapped outside its heap, so no slice of the table may leave
// Chunks: a caller holding one after dropping the Chunks would read
// unmapped memory.
type tableMem struct {
	addr, state, words []byte
}

// reserve maps room for n chunks outside the Go heap, as memory that
// takes no RAM until written: the walk then writes every chunk once, in
// place, where growing a slice would copy the table again and again and
// hold two copies at once; and parallel walkers can each write their part
// of a heap where it belongs (see walkSegment). Without the room (the
// system refuses to overcommit), the table grows as a slice.
func (c *Chunks) reserve(n int) {
	if c.mem != nil || len(c.addr) > 0 || n <= 0 {
		return
	}
	const flags = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS | unix.MAP_NORESERVE
	a, err := unix.Mmap(-1, 0, 8*n, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		return
	}
	s, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		unix.Munmap(a)
		return
	}
	// Room for the pointer cache: wordBudget words per slot, and the
	// starting words of a thousand segments walked in 16 parts.
	wd, err := unix.Mmap(-1, 0, 4*(wordBudget(n)+1<<20), unix.PROT_READ|unix.PROT_WRITE, flags)
	if err != nil {
		unix.Munmap(a)
		unix.Munmap(s)
		return
	}
	c.mem = &tableMem{a, s, wd}
	c.addr = unsafe.Slice((*uint64)(unsafe.Pointer(&a[0])), n)[:0]
	c.state = unsafe.Slice((*State)(unsafe.Pointer(&s[0])), n)[:0]
	runtime.AddCleanup(c.mem, func(m tableMem) {
		unix.Munmap(m.addr)
		unix.Munmap(m.state)
		unix.Munmap(m.words)
	}, *c.mem)
}

// takeWords returns room for n cached words past all room given out
// before: the runs of walked segments keep pointing at their words, so no
// room is ever given out twice. It returns false when the reservation is
// used up (the words then grow as a slice).
func (c *Chunks) takeWords(n int) ([]uint32, bool) {
	if c.mem == nil {
		return nil, false
	}
	all := unsafe.Slice((*uint32)(unsafe.Pointer(&c.mem.words[0])), len(c.mem.words)/4)
	if n <= 0 || c.wordsNext+n > len(all) {
		return nil, false
	}
	r := all[c.wordsNext : c.wordsNext : c.wordsNext+n]
	c.wordsNext += n
	return r, true
}

// release gives the pages of table slots [from, to) back to the system:
// slots that parallel walkers wrote and that the table does not use.
func (c *Chunks) release(from, to int) {
	if c.mem == nil || to <= from {
		return
	}
	drop := func(b []byte, lo, hi int) {
		lo = (lo + 4095) &^ 4095
		hi &^= 4095
		if hi > lo {
			unix.Madvise(b[lo:hi], unix.MADV_DONTNEED)
		}
	}
	drop(c.mem.addr, 8*from, 8*to)
	drop(c.mem.state, from, to)
}

// room returns the table's slots from its end to its capacity, for
// walkers to write into.
func (c *Chunks) room() ([]uint64, []State) {
	n := len(c.addr)
	return c.addr[n:cap(c.addr)], c.state[n:cap(c.addr)]
}

// bits is a growable bit set.
type bits []uint64

func (b bits) get(i int) bool {
	w := i >> 6
	return w < len(b) && b[w]>>(uint(i)&63)&1 != 0
}

func (b *bits) set(i int, v bool) {
	w := i >> 6
	if w >= len(*b) {
		if !v {
			return
		}
		*b = append(*b, make([]uint64, w+1-len(*b))...)
	}
	if v {
		(*b)[w] |= 1 << (uint(i) & 63)
	} else {
		(*b)[w] &^= 1 << (uint(i) & 63)
	}
}

// Len returns the number of chunks.
func (c *Chunks) Len() int { return len(c.addr) }

// Addr returns the header address of chunk i.
func (c *Chunks) Addr(i int) addrspace.Addr { return addrspace.Addr(c.addr[i]) }

// User returns the pointer malloc returned for chunk i.
func (c *Chunks) User(i int) addrspace.Addr { return addrspace.Addr(c.addr[i] + 16) }

// Size returns the chunk size of chunk i (header included).
func (c *Chunks) Size(i int) uint64 {
	switch {
	case c.ends.get(i):
		return c.endSz[c.addr[i]]
	case i == len(c.addr)-1:
		return c.lastSize
	}
	return c.addr[i+1] - c.addr[i]
}

// Followed reports whether chunk i+1 starts where chunk i ends (so that
// chunk i is not mmapped, and its size is the distance between them).
func (c *Chunks) Followed(i int) bool { return i+1 < len(c.addr) && !c.ends.get(i) }

// RunEnd returns the first chunk from i to limit on that no chunk follows
// directly (see Followed), or limit: chunks i to RunEnd(i, limit) lie one
// after another in memory.
func (c *Chunks) RunEnd(i, limit int) int {
	limit = min(limit, len(c.addr)-1)
	for w := i >> 6; w < len(c.ends) && w<<6 <= limit; w++ {
		b := c.ends[w]
		if w == i>>6 {
			b &= ^uint64(0) << (uint(i) & 63)
		}
		if b != 0 {
			return min(w<<6+mathbits.TrailingZeros64(b), limit)
		}
	}
	return limit
}

// State returns the state of chunk i.
func (c *Chunks) State(i int) State { return c.state[i] & stateMask }

// NoPointers reports whether the walk found that chunk i holds no word
// that could point into a chunk (so scanning it can find nothing).
func (c *Chunks) NoPointers(i int) bool { return c.state[i]&noPtrMark != 0 }

// EachMmapped calls fn with every mmapped chunk, in order: without a
// look at every chunk.
func (c *Chunks) EachMmapped(fn func(i int)) {
	for w, b := range c.mm {
		for ; b != 0; b &= b - 1 {
			fn(w<<6 + mathbits.TrailingZeros64(b))
		}
	}
}

// Mmapped reports whether chunk i is an mmapped chunk.
func (c *Chunks) Mmapped(i int) bool { return c.mm.get(i) }

func (c *Chunks) add(a, size uint64, s State, mmapped bool) {
	if n := len(c.addr); n > 0 && c.lastSize != 0 && (a != c.addr[n-1]+c.lastSize || mmapped || c.mm.get(n-1)) {
		c.setEnd(n-1, c.lastSize)
	}
	if len(c.addr) == cap(c.addr) {
		c.grow()
	}
	c.addr = append(c.addr, a)
	c.state = append(c.state, s)
	if mmapped {
		c.mm.set(len(c.addr)-1, true)
	}
	c.lastSize = size
}

// appendRun appends chunks that follow each other in memory, the last one
// of size lastSize. When they already lie right after the table's end, in
// its own memory (walkers write there), nothing is copied.
func (c *Chunks) appendRun(addr []uint64, state []State, lastSize uint64) {
	if len(addr) == 0 {
		return
	}
	n := len(c.addr)
	if n > 0 && c.lastSize != 0 && (addr[0] != c.addr[n-1]+c.lastSize || c.mm.get(n-1)) {
		c.setEnd(n-1, c.lastSize)
	}
	for cap(c.addr)-n < len(addr) {
		c.grow()
	}
	if &c.addr[:n+1][n] != &addr[0] {
		copyAll(c.addr[n:n+len(addr)], addr)
	}
	if &c.state[:n+1][n] != &state[0] {
		copyAll(c.state[n:n+len(state)], state)
	}
	c.addr, c.state = c.addr[:n+len(addr)], c.state[:n+len(state)]
	c.lastSize = lastSize
}

// copyAll copies src to dst (of the same length) on every CPU when they
// do not overlap. The parts of a heap walked at once move down the table
// this way: tens of megabytes, and the first write to every page of their
// new place faults it in.
func copyAll[T any](dst, src []T) {
	size := unsafe.Sizeof(dst[0])
	d, s := uintptr(unsafe.Pointer(&dst[0])), uintptr(unsafe.Pointer(&src[0]))
	n := uintptr(len(dst)) * size
	if len(dst) < 2*par.Grain || (d < s+n && s < d+n) {
		copy(dst, src)
		return
	}
	par.Ranges(len(dst), func(_, lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
}

// setEnd keeps chunk i's size apart: no chunk follows it directly.
func (c *Chunks) setEnd(i int, size uint64) {
	if c.endSz == nil {
		c.endSz = map[uint64]uint64{}
	}
	c.ends.set(i, true)
	c.endSz[c.addr[i]] = size
}

// seal settles the size of the chunk added last.
func (c *Chunks) seal() {
	if n := len(c.addr); n > 0 && c.lastSize != 0 {
		c.setEnd(n-1, c.lastSize)
		c.lastSize = 0
	}
}

// grow doubles the capacity of the table. append alone grows large
// slices by a quarter at a time, which for tens of millions of chunks
// copies (and page-faults in) the table several times over.
func (c *Chunks) grow() {
	n := max(2*cap(c.addr), 4096)
	addr := make([]uint64, len(c.addr), n)
	copy(addr, c.addr)
	state := make([]State, len(c.state), n)
	copy(state, c.state)
	c.addr, c.state = addr, state
}

// sort orders the chunks by address.
func (c *Chunks) sort() {
	c.seal()
	if c.isSorted() {
		return
	}
	sort.Sort(chunkSorter{c})
}

// isSorted reports whether the chunks are in address order, on every CPU.
func (c *Chunks) isSorted() bool {
	var unsorted atomic.Bool
	par.Ranges(len(c.addr), func(_, lo, hi int) {
		// Each range also compares its first chunk with the one before.
		if !slices.IsSorted(c.addr[max(lo-1, 0):hi]) {
			unsorted.Store(true)
		}
	})
	return !unsorted.Load()
}

type chunkSorter struct{ c *Chunks }

func (s chunkSorter) Len() int           { return len(s.c.addr) }
func (s chunkSorter) Less(i, j int) bool { return s.c.addr[i] < s.c.addr[j] }
func (s chunkSorter) Swap(i, j int) {
	c := s.c
	c.addr[i], c.addr[j] = c.addr[j], c.addr[i]
	c.state[i], c.state[j] = c.state[j], c.state[i]
	c.ends.swap(i, j)
	c.mm.swap(i, j)
}

func (b *bits) swap(i, j int) {
	if bi, bj := b.get(i), b.get(j); bi != bj {
		b.set(i, bj)
		b.set(j, bi)
	}
}

// Index returns the index of the chunk whose header is at a, or -1.
func (c *Chunks) Index(a addrspace.Addr) int {
	i := sort.Search(len(c.addr), func(i int) bool { return c.addr[i] >= uint64(a) })
	if i < len(c.addr) && c.addr[i] == uint64(a) {
		return i
	}
	return -1
}

// Containing returns the index of the chunk whose header or data holds a,
// or -1.
func (c *Chunks) Containing(a addrspace.Addr) int {
	i := sort.Search(len(c.addr), func(i int) bool { return c.addr[i] > uint64(a) }) - 1
	if i >= 0 && uint64(a) < c.addr[i]+c.Size(i) {
		return i
	}
	return -1
}
