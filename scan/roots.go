// Package scan decides, conservatively, which heap chunks a program can
// still reach. Every root (thread registers, the live part of each stack,
// modules' writable data, TLS, other anonymous and writable mappings) is
// scanned for aligned words that point into in-use chunks; reachable
// chunks propagate; free chunks and allocator metadata never do. What is
// left is classified like valgrind's memcheck: definite, indirect,
// possible.
package scan

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
)

// RootKind says what a root region is.
type RootKind uint8

// Kinds of roots.
const (
	RootStack RootKind = iota // live part of a thread's stack (and its TLS above it)
	RootData                  // writable data of a loaded module
	RootAnon                  // other anonymous or writable memory
	RootRegs                  // a thread's registers
)

var rootNames = [...]string{"stack", "module data", "anonymous memory", "registers"}

// String names k.
func (k RootKind) String() string { return rootNames[k] }

// A Root is a region of memory scanned as a root.
type Root struct {
	Kind       RootKind
	Start, End addrspace.Addr
	TID        int    // for stacks and registers
	Module     string // for module data
	// Interior pointers from this region count as start pointers
	// (ld.so keeps aligned interior pointers to its own allocations).
	InteriorOK bool
}

// Roots lists the root regions of s, minus every range of heap memory.
func Roots(s addrspace.Space, h *heapwalk.Heap) []Root {
	maps := s.Mappings()
	heap := heapRanges(h)
	roots, blocks := stackRoots(s, maps, heap)
	modOf := map[addrspace.Addr]string{}
	for _, mod := range addrspace.Modules(maps) {
		for _, m := range mod.Mappings {
			modOf[m.Start] = mod.Path
		}
		roots = append(roots, relroRoots(s, mod)...)
	}
	for _, m := range maps {
		if m.Missing || m.Perm&addrspace.Read == 0 {
			continue
		}
		if m.Path == "[vvar]" || m.Path == "[vvar_vclock]" || m.Path == "[vsyscall]" || m.Path == "[vdso]" {
			continue
		}
		if mod, ok := modOf[m.Start]; ok {
			if m.Perm&addrspace.Write != 0 {
				base := filepath.Base(mod)
				roots = append(roots, Root{Kind: RootData, Start: m.Start, End: m.End, Module: mod,
					InteriorOK: strings.HasPrefix(base, "ld-linux") || strings.HasPrefix(base, "ld-")})
			}
			continue
		}
		if m.Perm&addrspace.Write == 0 && !m.Anonymous() {
			continue // read-only file contents hold no heap pointers
		}
		// What the thread stack blocks in this mapping do not cover:
		// the whole mapping, unless a stack is in it.
		roots = append(roots, subtract([]Root{{Kind: RootAnon, Start: m.Start, End: m.End}}, blocks)...)
	}
	return subtract(roots, heap)
}

// stackRoots lists the live part of every thread's stack block: for a
// running thread, from its stack pointer (less the 128-byte red zone) to
// the end of its block, where glibc keeps the thread's static TLS and its
// TCB; for a stack in glibc's cache of exited threads' stacks, only the
// TCB and struct pthread at the top (they hold the cached DTV). It also
// returns, sorted, every block whole, which no other root may cover:
// memory below a stack pointer, and a dead thread's stack, are stale, and
// scanning them would hide leaks.
//
// A thread's block normally is its own mapping. glibc 2.42+ guards thread
// stacks with MADV_GUARD_INSTALL (Linux 6.13+) instead of a PROT_NONE
// mapping, and then neighbouring stacks merge into one mapping; the blocks
// are then told apart by their TCBs (see stackBlockOf).
func stackRoots(s addrspace.Space, maps []addrspace.Mapping, heap []heapwalk.Segment) (roots []Root, blocks []heapwalk.Segment) {
	live := map[addrspace.Addr]bool{}
	for _, t := range s.Threads() {
		sp := addrspace.Addr(t.Regs.Rsp)
		m := addrspace.Find(maps, sp)
		if m == nil {
			continue
		}
		block := heapwalk.Segment{Start: m.Start, End: m.End}
		if b, ok := stackBlockOf(s, maps, addrspace.Addr(t.Regs.FsBase), sp); ok {
			block = heapwalk.Segment{Start: max(b.Start, m.Start), End: min(b.End, m.End)}
			live[addrspace.Addr(t.Regs.FsBase)] = true
		}
		lo := max(sp-128, block.Start) // the red zone is live
		roots = append(roots, Root{Kind: RootStack, Start: lo, End: block.End, TID: t.TID})
		blocks = append(blocks, block)
	}
	// Cached stacks: walk each anonymous writable mapping down from its
	// end, block by block, as long as a glibc TCB sits at a block's top.
	for _, m := range maps {
		if !m.Anonymous() || m.Perm&(addrspace.Read|addrspace.Write) != addrspace.Read|addrspace.Write || m.Missing || covered(heap, m.Start, m.End) {
			continue
		}
		for end := m.End; end > m.Start; {
			tcb, b, ok := topBlock(s, maps, m, end)
			if !ok {
				break
			}
			b.Start = max(b.Start, m.Start)
			if !live[tcb] {
				roots = append(roots, Root{Kind: RootAnon, Start: tcb, End: b.End})
				blocks = append(blocks, b)
			}
			end = b.Start
		}
	}
	sort.Slice(blocks, func(i, j int) bool { return blocks[i].Start < blocks[j].Start })
	return roots, blocks
}

// covered reports whether [start, end) lies inside one of the sorted ranges.
func covered(ranges []heapwalk.Segment, start, end addrspace.Addr) bool {
	i := sort.Search(len(ranges), func(i int) bool { return ranges[i].End > start })
	return i < len(ranges) && ranges[i].Start <= start && end <= ranges[i].End
}

// topBlock looks for a glibc TCB in the last 8 KiB below end, where glibc
// puts it in a thread stack block (struct pthread, less than 4 KiB, sits
// at the top, aligned down to the static TLS alignment), and returns it
// with its block, which must end at end.
func topBlock(s addrspace.Space, maps []addrspace.Mapping, m addrspace.Mapping, end addrspace.Addr) (addrspace.Addr, heapwalk.Segment, bool) {
	const window = 8 << 10
	lo := max(m.Start, end-min(end, window))
	buf := make([]byte, end-lo)
	if n, _ := s.ReadAt(buf, lo); n < len(buf) {
		return 0, heapwalk.Segment{}, false
	}
	// The TCB starts with tcbhead_t: tcb (itself), dtv, self (itself).
	for off := (len(buf) - 24) &^ 63; off >= 0; off -= 64 {
		x := lo + addrspace.Addr(off)
		if addrspace.Addr(binary.LittleEndian.Uint64(buf[off:])) != x || addrspace.Addr(binary.LittleEndian.Uint64(buf[off+16:])) != x {
			continue
		}
		if b, ok := stackBlockOf(s, maps, x, x); ok && b.End == end {
			return x, b, true
		}
	}
	return 0, heapwalk.Segment{}, false
}

// stackBlockOf returns the stack block of the glibc thread whose TCB is at fs,
// from its struct pthread: the TCB (self-pointer at +16) is followed by
// the fields stackblock and stackblock_size, adjacent in every glibc
// release at a version-dependent offset. The pair is recognised as a
// page-aligned block that holds both sp and the TCB and ends in sp's
// mapping. The main thread (stackblock NULL) has none.
func stackBlockOf(s addrspace.Space, maps []addrspace.Mapping, fs, sp addrspace.Addr) (heapwalk.Segment, bool) {
	const page = 4096
	fm, m := addrspace.Find(maps, fs), addrspace.Find(maps, sp)
	if fs == 0 || fs%8 != 0 || fm == nil || m == nil {
		return heapwalk.Segment{}, false
	}
	buf := make([]byte, min(addrspace.Addr(0x1000), fm.End-fs))
	n, _ := s.ReadAt(buf, fs)
	if n < 24 {
		return heapwalk.Segment{}, false
	}
	buf = buf[:n&^7]
	word := func(i int) addrspace.Addr { return addrspace.Addr(binary.LittleEndian.Uint64(buf[i:])) }
	if word(16) != fs {
		return heapwalk.Segment{}, false // no glibc TCB
	}
	for i := 24; i+16 <= len(buf); i += 8 {
		lo, size := word(i), word(i+8)
		hi := lo + size
		if lo == 0 || lo%page != 0 || size == 0 || size%page != 0 || hi < lo {
			continue
		}
		if lo <= sp && sp < hi && lo <= fs && fs < hi && hi > m.Start && hi <= m.End {
			return heapwalk.Segment{Start: lo, End: hi}, true
		}
	}
	return heapwalk.Segment{}, false
}

// relroRoots lists the read-only part of mod's data segment, its
// PT_GNU_RELRO range: the dynamic loader writes it at startup and then
// makes it read-only, and what it wrote may point into the heap (the
// loader tables that glibc's startup code in a static executable
// mallocs). The range comes from the program headers in mod's first
// page, so it needs neither the file nor symbols.
func relroRoots(s addrspace.Space, mod addrspace.Module) []Root {
	start, end, ok := relroRange(s, mod)
	if !ok {
		return nil
	}
	var out []Root
	for _, m := range mod.Mappings {
		if m.Perm&addrspace.Read == 0 || m.Perm&addrspace.Write != 0 || m.Missing {
			continue // writable data is a root on its own
		}
		lo, hi := max(m.Start, start), min(m.End, end)
		if lo < hi {
			out = append(out, Root{Kind: RootData, Start: lo, End: hi, Module: mod.Path})
		}
	}
	return out
}

// relroRange reads mod's ELF header and program headers and returns the
// address range of its PT_GNU_RELRO segment.
func relroRange(s addrspace.Space, mod addrspace.Module) (start, end addrspace.Addr, ok bool) {
	const (
		ptLoad  = 1
		ptRelro = 0x6474e552
		etDyn   = 3
	)
	var hdr [64]byte
	if n, _ := s.ReadAt(hdr[:], mod.Start); n < len(hdr) || string(hdr[:4]) != "\x7fELF" || hdr[4] != 2 || hdr[5] != 1 {
		return 0, 0, false // not a 64-bit little-endian ELF image
	}
	phoff := binary.LittleEndian.Uint64(hdr[32:])
	phentsize := uint64(binary.LittleEndian.Uint16(hdr[54:]))
	phnum := uint64(binary.LittleEndian.Uint16(hdr[56:]))
	if phentsize < 56 || phnum == 0 || phnum > 64 || phoff > 0x10000 {
		return 0, 0, false
	}
	ph := make([]byte, phentsize*phnum)
	if n, _ := s.ReadAt(ph, mod.Start+addrspace.Addr(phoff)); n < len(ph) {
		return 0, 0, false
	}
	var firstLoad, relroVaddr, relroSize uint64
	haveLoad := false
	for i := uint64(0); i < phnum; i++ {
		p := ph[i*phentsize:]
		typ := binary.LittleEndian.Uint32(p)
		vaddr, memsz := binary.LittleEndian.Uint64(p[16:]), binary.LittleEndian.Uint64(p[40:])
		switch {
		case typ == ptLoad && !haveLoad:
			firstLoad, haveLoad = vaddr, true
		case typ == ptRelro:
			relroVaddr, relroSize = vaddr, memsz
		}
	}
	if !haveLoad || relroSize == 0 {
		return 0, 0, false
	}
	var bias addrspace.Addr
	if binary.LittleEndian.Uint16(hdr[16:]) == etDyn {
		bias = mod.Start - addrspace.Addr(firstLoad&^0xfff)
	}
	start = bias + addrspace.Addr(relroVaddr)
	end = start + addrspace.Addr(relroSize)
	if end < start || start < mod.Start || end > mod.End {
		return 0, 0, false
	}
	return start, end, true
}

// heapRanges lists the address ranges that hold chunks or allocator
// structures and are therefore never roots, sorted.
func heapRanges(h *heapwalk.Heap) []heapwalk.Segment {
	var out []heapwalk.Segment
	for _, ar := range h.Arenas {
		for _, s := range ar.Heaps {
			if !ar.Main {
				s.End = s.Start + addrspace.Addr(h.Layout.HeapMaxSize)
			}
			out = append(out, s)
		}
	}
	for _, ar := range h.Arenas {
		if ar.Main { // thread arenas live inside their heaps
			out = append(out, heapwalk.Segment{Start: ar.Addr, End: ar.Addr + addrspace.Addr(h.Layout.ArenaSize)})
		}
	}
	c := &h.Chunks
	c.EachMmapped(func(i int) {
		end := c.Addr(i) + addrspace.Addr(c.Size(i))
		if h.Layout.MmapUsableMinus8 {
			end += 16
		}
		out = append(out, heapwalk.Segment{Start: c.Addr(i), End: end})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	return out
}

// subtract removes the ranges from the roots.
func subtract(roots []Root, ranges []heapwalk.Segment) []Root {
	var out []Root
	for _, r := range roots {
		pieces := []Root{r}
		for _, x := range ranges {
			var next []Root
			for _, p := range pieces {
				if x.End <= p.Start || x.Start >= p.End {
					next = append(next, p)
					continue
				}
				if p.Start < x.Start {
					q := p
					q.End = x.Start
					next = append(next, q)
				}
				if p.End > x.End {
					q := p
					q.Start = x.End
					next = append(next, q)
				}
			}
			pieces = next
		}
		out = append(out, pieces...)
	}
	return out
}

// String describes r.
func (r Root) String() string {
	switch r.Kind {
	case RootStack, RootRegs:
		return fmt.Sprintf("%s of thread %d", r.Kind, r.TID)
	case RootData:
		return fmt.Sprintf("data of %s", r.Module)
	}
	return fmt.Sprintf("%s %v-%v", r.Kind, r.Start, r.End)
}
