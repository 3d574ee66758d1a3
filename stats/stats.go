// Package stats computes heap statistics from a heap walk, the way glibc
// itself counts them: for each arena its system memory, the chunks in use,
// the free chunks by where they sit (tcache, fastbins, unsorted, small and
// large bins, top), the largest free chunk, external fragmentation and what
// malloc_trim(0) would give back; the mmapped chunks; chunk-size
// histograms; and a summary of the whole address space by use (see
// Summarize). It also draws the heap as an SVG map (WriteSVG).
//
// Byte counts are chunk sizes, header included, as mallinfo2 and
// malloc_info count them. Mmapped chunks count their whole mapping, as
// mp_.mmapped_mem (mallinfo2's hblkhd) does.
package stats

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
)

// Version is the version of the JSON documents of this package. Fields are
// only ever added, never renamed.
const Version = 1

// PageSize is the page size of x86-64 Linux, the unit in which glibc's
// malloc_trim gives memory back.
const PageSize = 4096

// Hex is an address that JSON encodes as a "0x…" string.
type Hex uint64

// MarshalText formats h as lowercase hex with a 0x prefix.
func (h Hex) MarshalText() ([]byte, error) {
	return []byte("0x" + strconv.FormatUint(uint64(h), 16)), nil
}

// UnmarshalText parses a 0x-prefixed hex address.
func (h *Hex) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 0, 64)
	if err != nil {
		return fmt.Errorf("stats: bad address %q: %w", b, err)
	}
	*h = Hex(v)
	return nil
}

// String formats h like MarshalText.
func (h Hex) String() string { return addrspace.Addr(h).String() }

// Count is a number of chunks and their bytes.
type Count struct {
	Chunks uint64 `json:"chunks"`
	Bytes  uint64 `json:"bytes"`
}

func (c *Count) add(size uint64) { c.Chunks++; c.Bytes += size }

func (c *Count) plus(o Count) { c.Chunks += o.Chunks; c.Bytes += o.Bytes }

// Free is free memory, in total and split by where it sits. Chunks in a
// tcache are free for the program but in use for glibc's mallinfo2.
type Free struct {
	Count
	Tcache    Count `json:"tcache"`
	Fastbins  Count `json:"fastbins"`
	Unsorted  Count `json:"unsorted"`
	Smallbins Count `json:"smallbins"`
	Largebins Count `json:"largebins"`
	Top       Count `json:"top"`
	// Unbinned are free chunks (the next chunk's PREV_INUSE bit is clear)
	// that no free list holds: zero in a consistent heap.
	Unbinned Count `json:"unbinned"`
}

// kind returns the counter of free chunks in state st, or nil.
func (f *Free) kind(st heapwalk.State) *Count {
	switch st {
	case heapwalk.FreeTcache:
		return &f.Tcache
	case heapwalk.FreeFastbin:
		return &f.Fastbins
	case heapwalk.FreeUnsorted:
		return &f.Unsorted
	case heapwalk.FreeSmall:
		return &f.Smallbins
	case heapwalk.FreeLarge:
		return &f.Largebins
	case heapwalk.Top:
		return &f.Top
	case heapwalk.FreeOther:
		return &f.Unbinned
	}
	return nil
}

func (f *Free) plus(o *Free) {
	f.Count.plus(o.Count)
	f.Tcache.plus(o.Tcache)
	f.Fastbins.plus(o.Fastbins)
	f.Unsorted.plus(o.Unsorted)
	f.Smallbins.plus(o.Smallbins)
	f.Largebins.plus(o.Largebins)
	f.Top.plus(o.Top)
	f.Unbinned.plus(o.Unbinned)
}

// Figures are the statistics of one arena, or of all of them.
type Figures struct {
	// SystemMem is the memory the arena got from the system
	// (malloc_state.system_mem: mallinfo2's arena, malloc_info's
	// <system type="current">).
	SystemMem    uint64 `json:"system_mem"`
	MaxSystemMem uint64 `json:"max_system_mem"`
	// Threads is the number of threads attached to the arena
	// (malloc_state.attached_threads).
	Threads uint64 `json:"threads"`
	// InUse are the chunks the program holds (not the tcache chunks, not
	// glibc's own chunks).
	InUse Count `json:"in_use"`
	Free  Free  `json:"free"`
	// Overhead is glibc's own memory: tcache_perthread_structs,
	// fenceposts, and the bytes of system_mem outside any chunk (a
	// thread arena's heap_info and malloc_state, the end of old heaps).
	// InUse + Free + Overhead = SystemMem.
	Overhead Count `json:"overhead"`
	// LargestFree is the size of the largest free chunk, top included.
	LargestFree uint64 `json:"largest_free"`
	// Fragmentation is external fragmentation: 1 - LargestFree / Free.
	Fragmentation float64 `json:"fragmentation"`
	// Trimmable is what malloc_trim(0) would give back: the whole pages
	// inside free chunks once the fastbins are consolidated (madvised
	// away), and for the main arena the top beyond MINSIZE (sbrk'd back).
	Trimmable uint64 `json:"trimmable"`
	// TrimmableTop is the part of Trimmable that comes from the main
	// arena's top: what system_mem would drop by.
	TrimmableTop uint64 `json:"trimmable_top"`
}

func (f *Figures) finish() {
	f.Free.Count = Count{}
	for _, k := range []Count{f.Free.Tcache, f.Free.Fastbins, f.Free.Unsorted, f.Free.Smallbins,
		f.Free.Largebins, f.Free.Top, f.Free.Unbinned} {
		f.Free.Count.plus(k)
	}
	f.Fragmentation = 0
	if f.Free.Bytes > 0 {
		f.Fragmentation = 1 - float64(f.LargestFree)/float64(f.Free.Bytes)
	}
}

// Segment is an address range [Start, End).
type Segment struct {
	Start Hex `json:"start"`
	End   Hex `json:"end"`
}

// Arena is the statistics of one arena.
type Arena struct {
	Address Hex  `json:"address"`
	Main    bool `json:"main"`
	Figures
	// Heaps are the arena's memory: [heap] for the main arena (from the
	// first chunk to the end of top), each heap (heap_info included) of a
	// thread arena.
	Heaps []Segment `json:"heaps"`
}

// Total sums the arenas. LargestFree is the largest of theirs, and
// Fragmentation is computed from the sums.
type Total struct {
	Arenas int `json:"arenas"`
	Figures
}

// Target describes what was analyzed.
type Target struct {
	PID        int    `json:"pid,omitempty"`
	Core       string `json:"core,omitempty"`
	Executable string `json:"executable,omitempty"`
	Glibc      string `json:"glibc"`
	Threads    int    `json:"threads"`
}

// Stats are the heap statistics of a process.
type Stats struct {
	Version int     `json:"version"`
	Target  Target  `json:"target"`
	Arenas  []Arena `json:"arenas"`
	// Mmapped are the mmapped chunks: Bytes is their mappings' length,
	// as glibc's mp_.mmapped_mem counts it (for a memalign'd chunk, more
	// than its chunk size).
	Mmapped Count `json:"mmapped"`
	Total   Total `json:"total"`
	// Sizes are the chunk-size histograms (only when asked for).
	Sizes    *Sizes   `json:"sizes,omitempty"`
	Warnings []string `json:"warnings"`
}

// chunkList is the read side of heapwalk.Chunks.
type chunkList interface {
	Len() int
	Addr(i int) addrspace.Addr
	Size(i int) uint64
	State(i int) heapwalk.State
	Mmapped(i int) bool
}

// Compute computes the statistics of a walked heap. It reads the space
// only for the headers of mmapped chunks.
func Compute(s addrspace.Space, h *heapwalk.Heap) *Stats {
	info := s.Info()
	st := compute(h.Arenas, &h.Chunks, func(i int) uint64 { return mmapSpan(s, &h.Layout, &h.Chunks, i) })
	st.Target = Target{PID: info.PID, Core: info.Core, Executable: info.Executable, Glibc: h.Glibc,
		Threads: len(s.Threads())}
	st.Warnings = append(st.Warnings, h.Warnings...)
	return st
}

// compute does the work of Compute; span returns the mapping length of
// mmapped chunk i.
func compute(arenas []heapwalk.Arena, c chunkList, span func(i int) uint64) *Stats {
	st := &Stats{Version: Version, Arenas: make([]Arena, len(arenas)), Warnings: []string{}}
	for i := range arenas {
		st.Arenas[i] = arenaStats(&arenas[i], c, &st.Warnings)
	}
	for i := 0; i < c.Len(); i++ {
		if c.Mmapped(i) {
			st.Mmapped.Chunks++
			st.Mmapped.Bytes += span(i)
		}
	}
	st.Total = total(st.Arenas)
	return st
}

// arenaStats counts the chunks of one arena.
func arenaStats(ar *heapwalk.Arena, c chunkList, warns *[]string) Arena {
	a := Arena{Address: Hex(ar.Addr), Main: ar.Main, Heaps: []Segment{}}
	a.SystemMem, a.MaxSystemMem, a.Threads = ar.SystemMem, ar.MaxSystemMem, ar.Attached
	var walked uint64
	for _, seg := range ar.Heaps {
		a.Heaps = append(a.Heaps, Segment{Hex(seg.Start), Hex(seg.End)})
		lo, hi := chunkRange(c, seg.Start, seg.End)
		for i := lo; i < hi; i++ {
			if c.Mmapped(i) {
				continue
			}
			size := c.Size(i)
			walked += size
			st := c.State(i)
			if k := a.Free.kind(st); k != nil {
				k.add(size)
				a.LargestFree = max(a.LargestFree, size)
				continue
			}
			if st == heapwalk.InUse {
				a.InUse.add(size)
			} else {
				a.Overhead.add(size)
			}
		}
		tr := trimmable(c, lo, hi, ar.Main && ar.Flags&nonContiguous == 0)
		a.Trimmable += tr.binned + tr.top
		a.TrimmableTop += tr.top
	}
	switch {
	case walked <= a.SystemMem:
		a.Overhead.Bytes += a.SystemMem - walked
	case a.SystemMem != 0:
		*warns = append(*warns, fmt.Sprintf("arena %v: its chunks add up to %d bytes, more than its system_mem %d",
			ar.Addr, walked, a.SystemMem))
	}
	a.finish()
	return a
}

// nonContiguous is malloc_state's NONCONTIGUOUS_BIT: the main arena's
// memory is not one sbrk'd range, and systrim does not shrink it.
const nonContiguous = 2

// chunkRange returns the indices [lo, hi) of the non-mmapped chunks whose
// headers lie in [start, end).
func chunkRange(c chunkList, start, end addrspace.Addr) (int, int) {
	n := c.Len()
	lo := sort.Search(n, func(i int) bool { return c.Addr(i) >= start })
	hi := sort.Search(n, func(i int) bool { return c.Addr(i) >= end })
	for lo < hi && c.Mmapped(lo) {
		lo++
	}
	return lo, hi
}

// total sums the arenas.
func total(arenas []Arena) Total {
	t := Total{Arenas: len(arenas)}
	for i := range arenas {
		a := &arenas[i].Figures
		t.SystemMem += a.SystemMem
		t.MaxSystemMem += a.MaxSystemMem
		t.Threads += a.Threads
		t.InUse.plus(a.InUse)
		t.Free.plus(&a.Free)
		t.Overhead.plus(a.Overhead)
		t.LargestFree = max(t.LargestFree, a.LargestFree)
		t.Trimmable += a.Trimmable
		t.TrimmableTop += a.TrimmableTop
	}
	t.finish()
	return t
}

// mmapSpan returns the length of the mapping of mmapped chunk i, from its
// prev_size field (§5.1 of the fact sheet): prev_size + size, or from 2.43
// (prev_size&^1) + size + 16. It falls back to the chunk size.
func mmapSpan(s addrspace.Space, l *heapwalk.Layout, c chunkList, i int) uint64 {
	var b [8]byte
	size := c.Size(i)
	if _, err := s.ReadAt(b[:], c.Addr(i)); err != nil {
		return size
	}
	prev := binary.LittleEndian.Uint64(b[:])
	if l.MmapUsableMinus8 {
		return (prev &^ 1) + size + 16
	}
	if prev%16 != 0 || prev > uint64(c.Addr(i)) {
		return size
	}
	return prev + size
}

// mmapStart returns where the mapping of mmapped chunk i starts.
func mmapStart(s addrspace.Space, c chunkList, i int) addrspace.Addr {
	var b [8]byte
	a := c.Addr(i)
	if _, err := s.ReadAt(b[:], a); err != nil {
		return a
	}
	prev := binary.LittleEndian.Uint64(b[:]) &^ 1
	if prev%16 != 0 || prev > uint64(a) {
		return a
	}
	return a - addrspace.Addr(prev)
}
