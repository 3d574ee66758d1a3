// Package scan decides, conservatively, which heap chunks a program can
// still reach. Every root (thread registers, the live part of each stack,
// modules' writable data, TLS, other anonymous and writable mappings) is
// scanned for aligned words that point into in-use chunks; reachable
// chunks propagate; free chunks and allocator metadata never do. What is
// left is classified like valgrind's memcheck: definite, indirect,
// possible.
package scan

import (
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
	var roots []Root
	stackVMA := map[addrspace.Addr]bool{}
	for _, t := range s.Threads() {
		m := addrspace.Find(maps, addrspace.Addr(t.Regs.Rsp))
		if m == nil {
			continue
		}
		stackVMA[m.Start] = true
		lo := max(addrspace.Addr(t.Regs.Rsp)-128, m.Start) // the red zone is live
		roots = append(roots, Root{Kind: RootStack, Start: lo, End: m.End, TID: t.TID})
	}
	modOf := map[addrspace.Addr]string{}
	for _, mod := range addrspace.Modules(maps) {
		for _, m := range mod.Mappings {
			modOf[m.Start] = mod.Path
		}
	}
	for _, m := range maps {
		if stackVMA[m.Start] || m.Missing || m.Perm&addrspace.Read == 0 {
			continue
		}
		if m.Path == "[vvar]" || m.Path == "[vsyscall]" || m.Path == "[vdso]" {
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
		roots = append(roots, Root{Kind: RootAnon, Start: m.Start, End: m.End})
	}
	return subtract(roots, heapRanges(h))
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
	for i := 0; i < c.Len(); i++ {
		if c.Mmapped(i) {
			end := c.Addr(i) + addrspace.Addr(c.Size(i))
			if h.Layout.MmapUsableMinus8 {
				end += 16
			}
			out = append(out, heapwalk.Segment{Start: c.Addr(i), End: end})
		}
	}
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
