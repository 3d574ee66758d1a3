package stats

import (
	"bytes"
	"sort"
	"strings"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
)

// Address-space classes, in the order Summarize lists them.
const (
	ClassMainHeap       = "main heap"
	ClassArenaCommitted = "arena heaps (committed)"
	ClassArenaReserved  = "arena heaps (reserved)"
	ClassMmapped        = "mmapped chunks"
	ClassStacks         = "thread stacks"
	ClassGuards         = "stack guard pages"
	ClassImages         = "module images"
	ClassData           = "module data"
	ClassShared         = "shared memory"
	ClassFiles          = "file mappings"
	ClassKernel         = "kernel (vdso, vvar, vsyscall)"
	ClassAnon           = "other anonymous"
)

var classOrder = []string{ClassMainHeap, ClassArenaCommitted, ClassArenaReserved, ClassMmapped,
	ClassStacks, ClassGuards, ClassImages, ClassData, ClassShared, ClassFiles, ClassKernel, ClassAnon}

// Items of the thread stacks and shared memory classes.
const (
	StackLive     = "live threads"
	StackCached   = "no live thread (glibc's stack cache)"
	ShmSysV       = "SysV shm"
	ShmPOSIX      = "POSIX shm"
	ShmMemfd      = "memfd"
	ShmAnonymous  = "shared anonymous"
	ShmOtherShare = "other shared"
)

// Usage is how much of the address space something takes.
type Usage struct {
	// Mappings counts the mappings (VMAs) with a part in it.
	Mappings int    `json:"mappings"`
	Virtual  uint64 `json:"virtual"`
	// Resident and Swapped are known for live targets only.
	Resident *uint64 `json:"resident,omitempty"`
	Swapped  *uint64 `json:"swapped,omitempty"`
}

// Item is one named part of a class: a module, a file, a kind of shared
// memory or of stack.
type Item struct {
	Name string `json:"name"`
	Usage
}

// Class is one kind of use of the address space.
type Class struct {
	Class string `json:"class"`
	Usage
	Items []Item `json:"items,omitempty"`
}

// FDs counts a live process's open file descriptors by kind: "file",
// "deleted file", "directory", "device", "socket", "pipe", "memfd",
// "POSIX shm", and anon_inode names such as "eventfd" or "eventpoll".
type FDs struct {
	Total int            `json:"total"`
	Kinds map[string]int `json:"kinds"`
}

// AddressSpace is the address space of a process by use.
type AddressSpace struct {
	Version int    `json:"version"`
	Target  Target `json:"target"`
	// Usage is the whole address space: Mappings is the number of
	// mappings, which grows steadily in a program that leaks mmaps.
	Usage
	Classes  []Class  `json:"classes"`
	FDs      *FDs     `json:"fds,omitempty"`
	Warnings []string `json:"warnings"`
}

// Residency gives the resident and swapped bytes of a live target's
// memory. Proc implements it.
type Residency interface {
	// Mapping returns them for a whole mapping (from smaps).
	Mapping(m *addrspace.Mapping) (rss, swap uint64, ok bool)
	// Range returns them for part of a mapping (from pagemap).
	Range(start, end addrspace.Addr) (rss, swap uint64, ok bool)
}

// claim gives a range of the address space to a class, whatever the
// mapping it lies in: heaps and mmapped chunks, which the kernel may merge
// with neighbouring anonymous memory.
type claim struct {
	start, end addrspace.Addr
	class      string // "" for an arena heap: committed or reserved by perms
}

// piece is part of a mapping with its class.
type piece struct {
	start, end  addrspace.Addr
	class, item string
}

// Summarize sorts the address space of s by use. h may be nil (no heap
// walk); res is nil for a core.
func Summarize(s addrspace.Space, h *heapwalk.Heap, res Residency) *AddressSpace {
	if h == nil {
		return summarize(s, nil, nil, res)
	}
	return summarize(s, h, &h.Chunks, res)
}

// summarize does the work of Summarize; c holds h's chunks.
func summarize(s addrspace.Space, h *heapwalk.Heap, c chunkList, res Residency) *AddressSpace {
	maps := s.Mappings()
	info := s.Info()
	as := &AddressSpace{Version: Version, Warnings: []string{},
		Target: Target{PID: info.PID, Core: info.Core, Executable: info.Executable, Threads: len(s.Threads())}}
	if h != nil {
		as.Target.Glibc = h.Glibc
	}
	cl := newClassifier(s, maps, h, c)
	acc := newAccumulator(res != nil)
	for i := range maps {
		m := &maps[i]
		pieces := cl.pieces(m)
		for _, p := range pieces {
			var rss, swap uint64
			if res != nil {
				var ok bool
				if len(pieces) == 1 {
					rss, swap, ok = res.Mapping(m)
				} else {
					rss, swap, ok = res.Range(p.start, p.end)
				}
				if !ok {
					rss, swap = proportion(res, m, p)
				}
			}
			acc.add(i, p, rss, swap)
		}
	}
	as.Usage = acc.total(len(maps))
	as.Classes = acc.classes()
	return as
}

// proportion estimates a piece's residency from its mapping's.
func proportion(res Residency, m *addrspace.Mapping, p piece) (uint64, uint64) {
	rss, swap, ok := res.Mapping(m)
	if !ok || m.Size() == 0 {
		return 0, 0
	}
	f := float64(p.end-p.start) / float64(m.Size())
	return uint64(f * float64(rss)), uint64(f * float64(swap))
}

// classifier decides the class of every byte of the address space.
type classifier struct {
	s      addrspace.Space
	claims []claim
	mods   map[addrspace.Addr]string // file mapping start -> its module's path
	stacks map[addrspace.Addr]string // stack mapping start -> item
	guards map[addrspace.Addr]bool
}

func newClassifier(s addrspace.Space, maps []addrspace.Mapping, h *heapwalk.Heap, chunks chunkList) *classifier {
	c := &classifier{s: s, mods: map[addrspace.Addr]string{}, stacks: map[addrspace.Addr]string{},
		guards: map[addrspace.Addr]bool{}}
	if h != nil {
		c.claims = heapClaims(s, h, chunks)
	}
	for _, mod := range addrspace.Modules(maps) {
		if !isELF(s, &mod) {
			continue
		}
		for _, m := range mod.Mappings {
			if m.Perm&addrspace.Shared == 0 { // ELF images are mapped private
				c.mods[m.Start] = mod.Path
			}
		}
	}
	c.findStacks(maps)
	return c
}

// heapClaims claims the main arena's range, every thread arena's heaps
// (the whole HEAP_MAX_SIZE reservation) and every mmapped chunk's mapping.
func heapClaims(s addrspace.Space, h *heapwalk.Heap, c chunkList) []claim {
	var cl []claim
	for _, ar := range h.Arenas {
		for _, seg := range ar.Heaps {
			if ar.Main {
				cl = append(cl, claim{seg.Start.AlignDown(PageSize), seg.End.AlignUp(PageSize), ClassMainHeap})
			} else {
				cl = append(cl, claim{seg.Start, seg.Start + addrspace.Addr(h.Layout.HeapMaxSize), ""})
			}
		}
	}
	for i := 0; i < c.Len(); i++ {
		if c.Mmapped(i) {
			start := mmapStart(s, c, i)
			span := mmapSpan(s, &h.Layout, c, i)
			cl = append(cl, claim{start, start + addrspace.Addr(span), ClassMmapped})
		}
	}
	sort.Slice(cl, func(i, j int) bool { return cl[i].start < cl[j].start })
	return cl
}

// isELF reports whether a module starts with the ELF magic: a data file
// mapped at offset 0 is not a module. It reads the file rather than the
// target's memory, where the read would fault the page in and change the
// very residency being measured; it falls back to memory (a core), and
// says yes when neither can be read (trust the mapping).
func isELF(s addrspace.Space, mod *addrspace.Module) bool {
	var b [4]byte
	if f, err := s.OpenFile(mod.Path); err == nil {
		_, err = f.ReadAt(b[:], 0)
		f.Close()
		if err == nil {
			return bytes.Equal(b[:], []byte("\x7fELF"))
		}
	}
	if _, err := s.ReadAt(b[:], mod.Start); err != nil {
		return true
	}
	return bytes.Equal(b[:], []byte("\x7fELF"))
}

// maxGuard bounds the size of a stack guard: glibc's default is one page.
const maxGuard = 64 << 10

// findStacks finds the threads' stacks (the mappings of their stack
// pointers), the stacks of glibc's stack cache (an anonymous read-write
// mapping right above a small inaccessible one), and their guards.
func (c *classifier) findStacks(maps []addrspace.Mapping) {
	for _, t := range c.s.Threads() {
		if m := addrspace.Find(maps, addrspace.Addr(t.Regs.Rsp)); m != nil {
			c.stacks[m.Start] = StackLive
		}
	}
	for i := range maps {
		m := &maps[i]
		if m.Path == "[stack]" {
			c.stacks[m.Start] = StackLive
		}
		if i == 0 || !guardLike(&maps[i-1], m) {
			continue
		}
		if _, ok := c.stacks[m.Start]; !ok {
			if m.Path != "" || m.Perm&addrspace.Write == 0 || c.claimed(maps[i-1].Start, m.End) {
				continue
			}
			c.stacks[m.Start] = StackCached
		}
		c.guards[maps[i-1].Start] = true
	}
}

// guardLike reports whether g looks like the guard of the stack m: small,
// anonymous, neither writable nor executable, right below it. (A core
// made by gdb shows PROT_NONE as read-only.)
func guardLike(g, m *addrspace.Mapping) bool {
	return g.End == m.Start && g.Path == "" && g.Perm&(addrspace.Write|addrspace.Exec) == 0 &&
		g.Size() <= maxGuard
}

// claimed reports whether a claim overlaps [start, end).
func (c *classifier) claimed(start, end addrspace.Addr) bool {
	for _, cl := range c.claims {
		if cl.start < end && cl.end > start {
			return true
		}
	}
	return false
}

// pieces splits a mapping by the claims that overlap it.
func (c *classifier) pieces(m *addrspace.Mapping) []piece {
	class, item := c.classify(m)
	var out []piece
	at := m.Start
	i := sort.Search(len(c.claims), func(i int) bool { return c.claims[i].end > m.Start })
	for ; i < len(c.claims) && c.claims[i].start < m.End; i++ {
		cl := c.claims[i]
		start, end := max(cl.start, at), min(cl.end, m.End)
		if start >= end {
			continue
		}
		if start > at {
			out = append(out, piece{at, start, class, item})
		}
		cc := cl.class
		if cc == "" {
			cc = ClassArenaReserved
			if m.Perm&addrspace.Write != 0 {
				cc = ClassArenaCommitted
			}
		}
		out = append(out, piece{start, end, cc, ""})
		at = end
	}
	if at < m.End {
		out = append(out, piece{at, m.End, class, item})
	}
	return merge(out)
}

// merge joins adjacent pieces of the same class and item (mmapped chunks
// that the kernel merged into one mapping), so that a mapping with one
// use keeps its exact residency from smaps.
func merge(ps []piece) []piece {
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].end == p.start && out[n-1].class == p.class && out[n-1].item == p.item {
			out[n-1].end = p.end
			continue
		}
		out = append(out, p)
	}
	return out
}

// classify returns the class of a mapping, claims aside.
func (c *classifier) classify(m *addrspace.Mapping) (class, item string) {
	if it, ok := c.stacks[m.Start]; ok {
		return ClassStacks, it
	}
	if c.guards[m.Start] {
		return ClassGuards, ""
	}
	if path, ok := c.mods[m.Start]; ok {
		if m.Perm&addrspace.Write != 0 {
			return ClassData, path
		}
		return ClassImages, path
	}
	switch {
	case m.Path == "[heap]":
		return ClassMainHeap, ""
	case strings.HasPrefix(m.Path, "[v") || m.Start >= 0xffffffffff600000:
		return ClassKernel, ""
	case addrspace.SharedMemory(m.Path):
		return ClassShared, shmKind(m.Path)
	case m.File() && m.Perm&addrspace.Shared != 0:
		return ClassFiles, fileName(m)
	case m.Perm&addrspace.Shared != 0:
		return ClassShared, ShmOtherShare
	case m.File():
		return ClassFiles, fileName(m)
	case m.Path == "" && m.Perm&addrspace.Exec != 0 && m.Perm&addrspace.Write == 0 && isVDSO(c.s, m):
		return ClassKernel, ""
	}
	return ClassAnon, ""
}

// isVDSO recognizes the vDSO of a core, where it has no name: an
// anonymous read-only executable ELF image.
func isVDSO(s addrspace.Space, m *addrspace.Mapping) bool {
	var b [4]byte
	_, err := s.ReadAt(b[:], m.Start)
	return err == nil && bytes.Equal(b[:], []byte("\x7fELF"))
}

// shmKind names the kind of shared memory a path is.
func shmKind(path string) string {
	path = strings.TrimSuffix(path, " (deleted)")
	switch {
	case strings.HasPrefix(path, "/SYSV"):
		return ShmSysV
	case strings.HasPrefix(path, "/dev/shm/"):
		return ShmPOSIX
	case strings.HasPrefix(path, "/memfd:"):
		return ShmMemfd
	case path == "/dev/zero":
		return ShmAnonymous
	}
	return ShmOtherShare
}

func fileName(m *addrspace.Mapping) string {
	if m.Deleted {
		return m.Path + " (deleted)"
	}
	return m.Path
}

// accumulator sums pieces by class and item.
type accumulator struct {
	live    bool
	byClass map[string]*acc
	all     acc
}

type acc struct {
	maps         map[int]bool
	virtual      uint64
	rss, swap    uint64
	items        map[string]*acc
	itemsInOrder []string
}

func newAcc() *acc { return &acc{maps: map[int]bool{}, items: map[string]*acc{}} }

func newAccumulator(live bool) *accumulator {
	return &accumulator{live: live, byClass: map[string]*acc{}}
}

func (a *acc) add(mapping int, p piece, rss, swap uint64) {
	a.maps[mapping] = true
	a.virtual += uint64(p.end - p.start)
	a.rss += rss
	a.swap += swap
}

func (ac *accumulator) add(mapping int, p piece, rss, swap uint64) {
	c := ac.byClass[p.class]
	if c == nil {
		c = newAcc()
		ac.byClass[p.class] = c
	}
	c.add(mapping, p, rss, swap)
	if p.item != "" {
		it := c.items[p.item]
		if it == nil {
			it = newAcc()
			c.items[p.item] = it
			c.itemsInOrder = append(c.itemsInOrder, p.item)
		}
		it.add(mapping, p, rss, swap)
	}
	ac.all.virtual += uint64(p.end - p.start)
	ac.all.rss += rss
	ac.all.swap += swap
}

func (ac *accumulator) usage(a *acc, mappings int) Usage {
	u := Usage{Mappings: mappings, Virtual: a.virtual}
	if ac.live {
		rss, swap := a.rss, a.swap
		u.Resident, u.Swapped = &rss, &swap
	}
	return u
}

func (ac *accumulator) total(mappings int) Usage { return ac.usage(&ac.all, mappings) }

// classes lists the classes in their fixed order, each one's items in
// address order.
func (ac *accumulator) classes() []Class {
	out := []Class{}
	for _, name := range classOrder {
		a := ac.byClass[name]
		if a == nil {
			continue
		}
		cl := Class{Class: name, Usage: ac.usage(a, len(a.maps))}
		for _, in := range a.itemsInOrder {
			it := a.items[in]
			cl.Items = append(cl.Items, Item{Name: in, Usage: ac.usage(it, len(it.maps))})
		}
		out = append(out, cl)
	}
	return out
}
