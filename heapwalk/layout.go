package heapwalk

import (
	"errors"
	"fmt"
)

// Layout holds the glibc-version-dependent offsets and rules that the
// walker needs (x86-64). See ../shared/docs/glibc-malloc.md §0-§5.
type Layout struct {
	Major, Minor int

	// struct malloc_state
	ArenaFastbins    int64 // offset of fastbinsY, -1 when there are none (2.43+)
	NFastbins        int
	ArenaTop         uint64
	ArenaBins        uint64
	ArenaNext        uint64
	ArenaNextFree    uint64
	ArenaAttached    int64 // -1 before 2.23
	ArenaSystemMem   uint64
	ArenaMaxSysMem   uint64
	ArenaSize        uint64
	HeapInfoSize     uint64 // sizeof(heap_info)
	HeapMaxSize      uint64 // HEAP_MAX_SIZE (64 MiB by default)
	ArenaInHeapFirst uint64 // first chunk of an arena's first heap, from the heap start

	// struct malloc_par mp_
	MpSbrkBase    uint64
	MpNMmaps      uint64
	MpMmappedMem  uint64
	MpTcacheCount int64 // -1 without tcache
	MpSize        uint64

	// tcache_perthread_struct
	TcacheBins       int    // 0 without tcache
	TcacheCountSize  int    // 1 (char counts) or 2 (uint16)
	TcacheEntries    uint64 // offset of entries[]
	TcacheChunkSize  uint64 // chunk size of the struct (0x250, 0x290, 0x300)
	TcacheFillCount  int
	SafeLinking      bool
	MmapUsableMinus8 bool // 2.43+: mmapped usable size is chunksize-8
}

// ErrUnknownGlibc means the target's glibc is one whose malloc layout
// heapsift does not know.
var ErrUnknownGlibc = errors.New("unknown glibc version")

// Oldest and newest glibc releases whose layout heapsift knows.
const (
	MinMinor = 27
	MaxMinor = 44
)

// LayoutFor returns the layout of glibc 2.minor. It refuses versions it
// does not know rather than guessing.
func LayoutFor(major, minor int) (Layout, error) {
	switch {
	case major == 2 && minor > MaxMinor:
		return Layout{}, fmt.Errorf("%w: glibc %d.%d is newer than any glibc heapsift knows (2.%d to 2.%d); its malloc may have changed, and heapsift does not guess (a newer heapsift may know it)",
			ErrUnknownGlibc, major, minor, MinMinor, MaxMinor)
	case major != 2 || minor < MinMinor:
		return Layout{}, fmt.Errorf("%w: glibc %d.%d is not supported (heapsift knows 2.%d to 2.%d)", ErrUnknownGlibc, major, minor, MinMinor, MaxMinor)
	}
	l := Layout{Major: major, Minor: minor, HeapMaxSize: 64 << 20, NFastbins: 10, TcacheFillCount: 7}
	if minor >= 43 {
		l.ArenaFastbins = -1
		l.NFastbins = 0
		l.ArenaTop, l.ArenaBins, l.ArenaNext, l.ArenaNextFree = 0x8, 0x18, 0x818, 0x820
		l.ArenaAttached, l.ArenaSystemMem, l.ArenaMaxSysMem, l.ArenaSize = 0x828, 0x830, 0x838, 0x840
	} else {
		l.ArenaFastbins = 0x10
		l.ArenaTop, l.ArenaBins, l.ArenaNext, l.ArenaNextFree = 0x60, 0x70, 0x870, 0x878
		l.ArenaAttached, l.ArenaSystemMem, l.ArenaMaxSysMem, l.ArenaSize = 0x880, 0x888, 0x890, 0x898
	}
	if minor >= 35 {
		l.HeapInfoSize = 0x30
	} else {
		l.HeapInfoSize = 0x20
	}
	// The first chunk follows the arena, placed so that chunk+16 is 16-aligned.
	arenaEnd := l.HeapInfoSize + l.ArenaSize
	l.ArenaInHeapFirst = ((arenaEnd + 16 + 15) &^ 15) - 16

	switch {
	case minor >= 43:
		l.MpNMmaps, l.MpMmappedMem, l.MpSbrkBase, l.MpTcacheCount = 0x44, 0x58, 0x68, 0x80
		l.MpSize = 0x90
		if minor >= 44 {
			l.MpSize = 0x88
		}
	case minor >= 35:
		l.MpNMmaps, l.MpMmappedMem, l.MpSbrkBase, l.MpTcacheCount, l.MpSize = 0x3c, 0x50, 0x60, 0x78, 0x88
	default:
		l.MpNMmaps, l.MpMmappedMem, l.MpSbrkBase, l.MpTcacheCount, l.MpSize = 0x28, 0x38, 0x48, 0x60, 0x70
	}
	switch {
	case minor >= 42:
		l.TcacheBins, l.TcacheCountSize, l.TcacheEntries, l.TcacheChunkSize = 76, 2, 0x98, 0x300
	case minor >= 30:
		l.TcacheBins, l.TcacheCountSize, l.TcacheEntries, l.TcacheChunkSize = 64, 2, 0x80, 0x290
	default:
		l.TcacheBins, l.TcacheCountSize, l.TcacheEntries, l.TcacheChunkSize = 64, 1, 0x40, 0x250
	}
	if minor >= 43 {
		l.TcacheFillCount = 16
		l.MmapUsableMinus8 = true
	}
	l.SafeLinking = minor >= 32
	return l, nil
}

// BinHeader returns the address of the fake chunk that heads bin i
// (1 = unsorted) of the arena at a: its fd is at +0x10 and bk at +0x18.
func (l *Layout) BinHeader(arena uint64, i int) uint64 {
	return arena + l.ArenaBins + uint64(i-1)*16 - 16
}

// otherArenaFamily returns l with the malloc_state layout of the other
// side of glibc 2.43's removal of fastbins.
func otherArenaFamily(l Layout) Layout {
	minor := 43
	if l.NFastbins == 0 {
		minor = 42
	}
	o, _ := LayoutFor(2, minor)
	l.ArenaFastbins, l.NFastbins, l.ArenaTop, l.ArenaBins = o.ArenaFastbins, o.NFastbins, o.ArenaTop, o.ArenaBins
	l.ArenaNext, l.ArenaNextFree, l.ArenaAttached = o.ArenaNext, o.ArenaNextFree, o.ArenaAttached
	l.ArenaSystemMem, l.ArenaMaxSysMem, l.ArenaSize = o.ArenaSystemMem, o.ArenaMaxSysMem, o.ArenaSize
	arenaEnd := l.HeapInfoSize + l.ArenaSize
	l.ArenaInHeapFirst = ((arenaEnd + 16 + 15) &^ 15) - 16
	l.Minor = minor
	return l
}
