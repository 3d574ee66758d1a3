package heapwalk

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/heapsift/heapsift/addrspace"
)

// Static executables: glibc's malloc lives in the executable itself
// (main_arena and mp_ in its .data), its TLS variables use the local-exec
// model (offsets are constants in code: no TPOFF64 GOT slots), and it has
// no version banner. So everything is found from data: main_arena as for a
// core without libc's file (inferLayout), the layout family from mp_'s
// image, the tcache struct's size and safe-linking, and each thread's
// tcache pointer from the executable's static TLS block.

// exeModule returns the main executable's module.
func exeModule(s addrspace.Space, mods []addrspace.Module) *addrspace.Module {
	exe := s.Info().Executable
	for i := range mods {
		if mods[i].Path == exe {
			return &mods[i]
		}
	}
	return nil
}

// memProgs returns the program headers of the ELF image mapped at start.
func memProgs(s addrspace.Space, start addrspace.Addr) []elf.ProgHeader {
	hdr := make([]byte, 4096)
	if _, err := s.ReadAt(hdr, start); err != nil || string(hdr[:4]) != "\x7fELF" || hdr[4] != byte(elf.ELFCLASS64) {
		return nil
	}
	phoff := binary.LittleEndian.Uint64(hdr[0x20:])
	phnum := int(binary.LittleEndian.Uint16(hdr[0x38:]))
	var out []elf.ProgHeader
	for i := 0; i < phnum && phoff+uint64(i+1)*56 <= uint64(len(hdr)); i++ {
		ph := hdr[phoff+uint64(i)*56:]
		out = append(out, elf.ProgHeader{
			Type:  elf.ProgType(binary.LittleEndian.Uint32(ph[0:])),
			Flags: elf.ProgFlag(binary.LittleEndian.Uint32(ph[4:])),
			Off:   binary.LittleEndian.Uint64(ph[8:]), Vaddr: binary.LittleEndian.Uint64(ph[16:]),
			Filesz: binary.LittleEndian.Uint64(ph[32:]), Memsz: binary.LittleEndian.Uint64(ph[40:]),
			Align: binary.LittleEndian.Uint64(ph[48:]),
		})
	}
	return out
}

// isStaticImage reports whether the ELF image at start has no dynamic
// loader (no PT_INTERP): a static executable, PIE or not.
func isStaticImage(s addrspace.Space, start addrspace.Addr) bool {
	progs := memProgs(s, start)
	if progs == nil {
		return false
	}
	for _, p := range progs {
		if p.Type == elf.PT_INTERP {
			return false
		}
	}
	return true
}

// notGlibc explains why a static executable has no glibc malloc.
func notGlibc(lc *libc, err error) error {
	if lc.file != nil {
		ef := lc.file.ELF()
		if ef.Section(".go.buildinfo") != nil || ef.Section(".gopclntab") != nil {
			return fmt.Errorf("%w: %s is a Go program (statically linked, no C library: the Go runtime manages its memory); heapsift analyzes glibc malloc only", ErrNoGlibc, lc.mod.Path)
		}
		if data, _ := lc.file.SectionData(".rodata"); strings.Contains(string(data), "musl") {
			return fmt.Errorf("%w: %s is a static musl program; heapsift analyzes glibc malloc only", ErrNoGlibc, lc.mod.Path)
		}
	}
	return fmt.Errorf("%w: %s is statically linked, and no glibc malloc state was found in it (%v)", ErrNoGlibc, lc.mod.Path, err)
}

// A span is a range of glibc minor versions that some evidence allows.
type span struct{ lo, hi int }

func (a span) and(b span) span { return span{max(a.lo, b.lo), min(a.hi, b.hi)} }

func (a span) String() string {
	if a.lo == a.hi {
		return fmt.Sprintf("2.%d", a.lo)
	}
	return fmt.Sprintf("2.%d–2.%d", a.lo, a.hi)
}

// mpFamilies are the mp_ layouts, each named by a release that has it.
var mpFamilies = []struct {
	minor int
	span  span
}{{34, span{26, 34}}, {41, span{35, 42}}, {43, span{43, 44}}}

// staticLayout settles the layout of a static executable's glibc once
// inferLayout has found main_arena: mp_ tells the family (its image in
// the executable's .data, or its live values), which the arena's layout
// must agree with. It returns the evidence as a version span.
func (w *walker) staticLayout(lc *libc) span {
	sp := span{MinMinor, MaxMinor}
	if w.l.NFastbins > 0 {
		sp = sp.and(span{27, 42})
	} else {
		sp = sp.and(span{43, 44})
	}
	if w.l.Minor == 34 {
		sp = sp.and(span{27, 34}) // heap_info of a thread arena is 0x20
	} else if w.heapArenas() > 0 {
		sp = sp.and(span{35, 44})
	}
	var found []int
	var addrs []uint64
	var hows []string
	for _, fam := range mpFamilies {
		if !fam.span.overlaps(sp) {
			continue
		}
		l, _ := LayoutFor(2, fam.minor)
		if a, how, ok := w.findMpIn(lc, &l); ok {
			found = append(found, fam.minor)
			addrs = append(addrs, a)
			hows = append(hows, how)
		}
	}
	if len(found) == 1 {
		fam, _ := LayoutFor(2, found[0])
		w.l.MpSbrkBase, w.l.MpNMmaps, w.l.MpMmappedMem, w.l.MpTcacheCount, w.l.MpSize = fam.MpSbrkBase, fam.MpNMmaps, fam.MpMmappedMem, fam.MpTcacheCount, fam.MpSize
		w.l.TcacheFillCount = fam.TcacheFillCount
		for _, f := range mpFamilies {
			if f.minor == found[0] {
				sp = sp.and(f.span)
			}
		}
		if w.l.Minor != 34 && sp.hi <= 34 {
			// A single arena says nothing of heap_info: the mp_ family does.
			l34, _ := LayoutFor(2, 34)
			w.l.HeapInfoSize, w.l.ArenaInHeapFirst = l34.HeapInfoSize, l34.ArenaInHeapFirst
		}
		w.l.Minor = max(sp.lo, min(sp.hi, w.l.Minor))
		w.mp = addrs[0]
		w.h.Findings = append(w.h.Findings, Finding{What: "mp_", Addr: addrspace.Addr(addrs[0]), How: []string{hows[0]}})
		if n, err := w.u64(addrs[0] + w.l.MpNMmaps); err == nil {
			w.h.NMmaps = int64(uint32(n))
		}
	}
	w.l.SafeLinking = w.l.Minor >= 32
	return sp
}

// staticVersion narrows the span with the tcache struct's layout and the
// free lists' safe-linking, and reports it.
func (w *walker) staticVersion(sp span, ma uint64) {
	sp = w.narrowSpan(sp)
	w.h.Banner = fmt.Sprintf("static executable (no version banner); the malloc layout of glibc %v", sp)
	w.h.Findings = append(w.h.Findings, Finding{What: fmt.Sprintf("glibc %v layout", sp), Addr: addrspace.Addr(ma), How: []string{
		"a static executable has no version banner: inferred from main_arena, mp_, the tcache struct and safe-linking"}})
}

// narrowSpan narrows sp with the tcache struct's layout and the free
// lists' safe-linking.
func (w *walker) narrowSpan(sp span) span {
	for i, sh := range tcacheShapes {
		if sh.chunk == w.l.TcacheChunkSize && len(w.h.Tcaches) > 0 {
			hi := MaxMinor
			if i+1 < len(tcacheShapes) {
				hi = tcacheShapes[i+1].from - 1
			}
			if n := sp.and(span{sh.from, hi}); n.lo <= n.hi {
				sp = n
			}
		}
	}
	if plain, mangled := w.safeVotes[0], w.safeVotes[1]; plain != mangled {
		safe := span{32, MaxMinor}
		if plain > mangled {
			safe = span{26, 31}
		}
		if n := sp.and(safe); n.lo <= n.hi {
			sp = n
		}
	}
	return sp
}

func (a span) overlaps(b span) bool { return a.and(b).lo <= a.and(b).hi }

// heapArenas counts the thread arenas found.
func (w *walker) heapArenas() int {
	n := 0
	for _, ar := range w.h.Arenas {
		if !ar.Main {
			n++
		}
	}
	return n
}

// findMpIn looks for mp_ with layout l: its default image in the file's
// .data, or else, in memory, a malloc_par whose live values fit.
func (w *walker) findMpIn(lc *libc, l *Layout) (uint64, string, bool) {
	if lc.file != nil {
		var img []candidate
		for _, c := range mpCandidates(lc, l) {
			if !strings.Contains(c.how, "debug symbols") {
				img = append(img, c)
			}
		}
		if len(img) == 1 {
			return img[0].addr, strings.Replace(img[0].how, "libc", "the executable's", 1), true
		}
		return 0, "", false
	}
	var heap addrspace.Addr
	for _, m := range w.maps {
		if m.Path == "[heap]" {
			heap = m.Start
		}
	}
	var out []uint64
	for _, m := range lc.mod.Mappings {
		if m.Perm&addrspace.Write == 0 || m.Size() > 64<<20 {
			continue
		}
		b, err := addrspace.ReadFull(w.s, m.Start, int(m.Size()))
		if err != nil {
			continue
		}
		for off := uint64(0); off+l.MpSize <= uint64(len(b)); off += 8 {
			u := func(o uint64) uint64 { return binary.LittleEndian.Uint64(b[off+o:]) }
			tc := uint64(l.MpTcacheCount)
			if u(tc) != uint64(l.TcacheFillCount) || u(tc-16) != 64 || (u(tc-8) != 0x408 && u(tc-8) != 0x411) ||
				u(0x18) == 0 || u(l.MpSbrkBase) == 0 || addrspace.Addr(u(l.MpSbrkBase)).AlignDown(4096) != heap {
				continue
			}
			out = append(out, uint64(m.Start)+off)
		}
	}
	if len(out) == 1 {
		return out[0], "its live values in the executable's data (tcache defaults, sbrk_base at [heap])", true
	}
	return 0, "", false
}

// staticTLS returns the size of the executable's static TLS block: how far
// below the thread pointer its variables can be (TLS variant II).
func staticTLS(s addrspace.Space, start addrspace.Addr) uint64 {
	for _, p := range memProgs(s, start) {
		if p.Type == elf.PT_TLS {
			align := max(p.Align, 1)
			return (p.Memsz + align - 1) / align * align
		}
	}
	return 0
}

// readStaticTcaches finds the TLS offset of `tcache` in a static
// executable: the offset in its static TLS block at which every thread
// holds a tcache struct that checks out by shape, or the tcache dummy.
func (w *walker) readStaticTcaches(lc *libc) bool {
	size := staticTLS(w.s, lc.mod.Start)
	if size == 0 || size > 1<<20 {
		return false
	}
	w.h.Chunks.sort()
	var idle uint64
	for d := uint64(8); d <= size; d += 8 {
		tp := -d
		found, dummies, ok := w.tcachesAt(lc, tp)
		if !ok {
			continue
		}
		if len(found) == 0 {
			if dummies > 0 && idle == 0 {
				idle = d
			}
			continue
		}
		var free []freeEntry
		sh, _ := tcacheShapeOf(w.l.TcacheChunkSize)
		for _, tc := range found {
			entries, ok := w.tcacheByShape(tc.Addr, sh, map[bool]int{})
			if !ok {
				found = nil
				break
			}
			free = append(free, entries...)
		}
		if found == nil {
			continue
		}
		w.h.Tcaches = found
		w.free = append(w.free, free...)
		w.h.Findings = append(w.h.Findings, Finding{What: "tcache TLS variable", Addr: w.tlsAddr(tp),
			How: []string{fmt.Sprintf("static TLS block: thread pointer − %#x holds a valid tcache struct in %d thread(s)", d, len(found))}})
		return true
	}
	if idle != 0 {
		w.h.Findings = append(w.h.Findings, Finding{What: "tcache TLS variable", Addr: w.tlsAddr(-idle),
			How: []string{fmt.Sprintf("static TLS block: thread pointer − %#x; no thread has a tcache yet (each points at glibc's inactive dummy)", idle)}})
		return true
	}
	return false
}

// staticArenaChecks lists the other ways that agree on a static
// executable's main_arena: its initial image in the file's .data (next
// pointing to itself, attached_threads 1), and its symbol when symbols
// may be used.
func (w *walker) staticArenaChecks(lc *libc, ma uint64) []string {
	if lc.file == nil {
		return nil
	}
	var how []string
	link := ma - lc.bias
	if b, err := lc.file.ReadVaddr(link+w.l.ArenaNext, 8); err == nil && binary.LittleEndian.Uint64(b) == link && arenaImageOK(lc.file, link, &w.l) {
		how = append(how, "its initial image in the executable's .data")
	}
	if lc.syms {
		if sym, ok := lc.file.Lookup("main_arena"); ok && sym.Value+lc.bias == ma {
			how = append(how, "debug symbols (the executable's symbol table)")
		}
	}
	return how
}

// tlsAddr is the address of TLS offset tp in the first thread.
func (w *walker) tlsAddr(tp uint64) addrspace.Addr {
	for _, t := range w.s.Threads() {
		if t.Regs.FsBase != 0 {
			return addrspace.Addr(t.Regs.FsBase + tp)
		}
	}
	return 0
}
