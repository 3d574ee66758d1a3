package heapwalk

import (
	"sort"

	"github.com/heapsift/heapsift/addrspace"
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

// Chunks is every chunk of the heap, sorted by address, stored as parallel
// arrays so that tens of millions of chunks stay small (13 bytes each).
type Chunks struct {
	addr    []uint64 // chunk header address
	size16  []uint32 // chunk size / 16
	state   []State
	mmapped []bool // nil until an mmapped chunk is added
}

// Len returns the number of chunks.
func (c *Chunks) Len() int { return len(c.addr) }

// Addr returns the header address of chunk i.
func (c *Chunks) Addr(i int) addrspace.Addr { return addrspace.Addr(c.addr[i]) }

// User returns the pointer malloc returned for chunk i.
func (c *Chunks) User(i int) addrspace.Addr { return addrspace.Addr(c.addr[i] + 16) }

// Size returns the chunk size of chunk i (header included).
func (c *Chunks) Size(i int) uint64 { return uint64(c.size16[i]) << 4 }

// State returns the state of chunk i.
func (c *Chunks) State(i int) State { return c.state[i] }

// Mmapped reports whether chunk i is an mmapped chunk.
func (c *Chunks) Mmapped(i int) bool { return c.mmapped != nil && c.mmapped[i] }

func (c *Chunks) add(a, size uint64, s State, mmapped bool) {
	c.addr = append(c.addr, a)
	c.size16 = append(c.size16, uint32(size>>4))
	c.state = append(c.state, s)
	if mmapped && c.mmapped == nil {
		c.mmapped = make([]bool, len(c.addr)-1, cap(c.addr))
	}
	if c.mmapped != nil {
		c.mmapped = append(c.mmapped, mmapped)
	}
}

// sort orders the chunks by address.
func (c *Chunks) sort() {
	if sort.IsSorted(chunkSorter{c}) {
		return
	}
	sort.Sort(chunkSorter{c})
}

type chunkSorter struct{ c *Chunks }

func (s chunkSorter) Len() int           { return len(s.c.addr) }
func (s chunkSorter) Less(i, j int) bool { return s.c.addr[i] < s.c.addr[j] }
func (s chunkSorter) Swap(i, j int) {
	c := s.c
	c.addr[i], c.addr[j] = c.addr[j], c.addr[i]
	c.size16[i], c.size16[j] = c.size16[j], c.size16[i]
	c.state[i], c.state[j] = c.state[j], c.state[i]
	if c.mmapped != nil {
		c.mmapped[i], c.mmapped[j] = c.mmapped[j], c.mmapped[i]
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
