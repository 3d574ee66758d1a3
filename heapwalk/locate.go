package heapwalk

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/elfsym"
	"golang.org/x/arch/x86/x86asm"
)

// Options control how the walker finds glibc's structures.
type Options struct {
	// NoDebugSymbols ignores separate debug files, so that only the
	// symbol-free discovery paths are used.
	NoDebugSymbols bool
	// DebugDirs are searched for separate debug files by build-id.
	DebugDirs []string
	// Progress, when set, counts the bytes of heap read so far, for a
	// progress display running in another goroutine.
	Progress *atomic.Uint64
	// NoPointerCache makes the walk keep no chunk's pointers for the
	// scan, which then reads every chunk that may hold one again: for
	// comparisons.
	NoPointerCache bool

	// parts and minPart override how many goroutines walk one heap
	// segment and how small a part may be, for tests.
	parts   int
	minPart uint64
}

// A Finding records where one of glibc's structures was found and how, so
// that a user can trust or question it.
type Finding struct {
	What string         `json:"what"`
	Addr addrspace.Addr `json:"address"`
	How  []string       `json:"how"`
}

// ErrNoGlibc means the target has no glibc malloc to analyze.
var ErrNoGlibc = errors.New("no glibc malloc in this process")

// libc is what the walker knows about the target's libc.
type libc struct {
	mod    addrspace.Module
	file   *elfsym.File // nil when the file is not available
	bias   uint64       // runtime address = link-time address + bias
	major  int
	minor  int
	banner string
	debug  string // debug file used, if any
	static bool   // a static executable: malloc is in the executable
	syms   bool   // symbols may be used (not --no-debug-symbols)
}

var libcName = regexp.MustCompile(`^libc(-2\.\d+)?\.so(\.6)?$`)

// findLibc locates the libc module and its version. For a static
// executable, the "libc" is the executable itself.
func findLibc(s addrspace.Space, opt Options) (*libc, []string, error) {
	var warns []string
	mods := addrspace.Modules(s.Mappings())
	var lc *libc
	for _, m := range mods {
		if libcName.MatchString(filepath.Base(m.Path)) {
			lc = &libc{mod: m}
			break
		}
	}
	if lc == nil {
		if msg := foreignAllocator(mods); msg != "" {
			return nil, nil, fmt.Errorf("%w: %s", ErrNoGlibc, msg)
		}
		exe := exeModule(s, mods)
		if exe == nil || !isStaticImage(s, exe.Start) {
			return nil, nil, fmt.Errorf("%w: no libc.so.6 is mapped, and the executable is not static (another C library?)", ErrNoGlibc)
		}
		lc = &libc{mod: *exe, static: true}
	}
	lc.syms = !opt.NoDebugSymbols
	what := "libc file"
	if lc.static {
		what = "the static executable"
	}
	if fh, err := s.OpenFile(lc.mod.Path); err == nil {
		f, err := elfsym.Open(fh)
		if err != nil {
			warns = append(warns, fmt.Sprintf("%s %s: %v", what, lc.mod.Path, err))
		} else if mem := memBuildID(s, lc.mod.Start); mem != nil && string(mem) != string(f.BuildID()) {
			warns = append(warns, fmt.Sprintf("%s %s does not match the target's (build-id %x in memory, %x on disk); not using it", what, lc.mod.Path, mem, f.BuildID()))
		} else {
			lc.file = f
		}
	} else {
		warns = append(warns, fmt.Sprintf("cannot open %s %s: %v", what, lc.mod.Path, err))
	}
	if lc.file != nil {
		lc.bias = uint64(lc.mod.Start) - lc.file.LinkBase()
		if !opt.NoDebugSymbols {
			dirs := opt.DebugDirs
			if len(dirs) == 0 {
				dirs = elfsym.DefaultDebugDirs
			}
			if p := elfsym.FindDebugFile(lc.file, lc.mod.Path, dirs); p != "" {
				if d, err := elfsym.OpenPath(p); err == nil {
					lc.file.AttachDebug(d, p)
					lc.debug = p
				}
			}
		}
		if ma, mi, text, ok := lc.file.Banner(); ok {
			lc.major, lc.minor, lc.banner = ma, mi, firstLine(text)
		}
	} else {
		lc.bias = uint64(lc.mod.Start)
	}
	if lc.major == 0 {
		if ma, mi, text, ok := memBanner(s, lc.mod); ok {
			lc.major, lc.minor, lc.banner = ma, mi, firstLine(text)
		}
	}
	if lc.major == 0 && !lc.static {
		warns = append(warns, fmt.Sprintf("the glibc version of %s is unknown (its file is not available): inferring malloc's layout from the heap", lc.mod.Path))
	}
	return lc, warns, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// foreignAllocator names the allocator the process seems to use instead
// of glibc's, from its modules' names, or returns "".
func foreignAllocator(mods []addrspace.Module) string {
	for _, m := range mods {
		b := filepath.Base(m.Path)
		for _, a := range []string{"jemalloc", "tcmalloc", "mimalloc", "hoard", "snmalloc", "rpmalloc"} {
			if strings.Contains(b, a) {
				return fmt.Sprintf("this process allocates with %s (%s); heapsift analyzes glibc malloc only", a, m.Path)
			}
		}
		if strings.HasPrefix(b, "ld-musl") || strings.HasPrefix(b, "libc.musl") {
			return fmt.Sprintf("this is a musl process (%s); heapsift analyzes glibc malloc only", m.Path)
		}
	}
	return ""
}

// checkForeign refuses a process whose malloc is not glibc's: glibc's
// arenas were never used, and a known allocator is loaded or another
// module defines malloc. When glibc's heap is in use as well, a foreign
// allocator only earns a warning.
func (w *walker) checkForeign(lc *libc) error {
	if lc.static {
		return nil
	}
	mods := addrspace.Modules(w.maps)
	msg := foreignAllocator(mods)
	used := false
	for _, ar := range w.h.Arenas {
		used = used || ar.Top != 0
	}
	if used {
		if msg != "" {
			w.warnf("%s: glibc's heap is in use as well, and only it is analyzed", strings.TrimSuffix(msg, "; heapsift analyzes glibc malloc only"))
		}
		return nil
	}
	if msg == "" {
		msg = w.mallocDefinedOutside(lc, mods)
	}
	if msg != "" {
		return fmt.Errorf("%w: %s (glibc's malloc was never used)", ErrNoGlibc, msg)
	}
	return nil
}

// mallocDefinedOutside names a module other than libc and the dynamic
// loader that exports malloc (and so replaces glibc's), or returns "".
func (w *walker) mallocDefinedOutside(lc *libc, mods []addrspace.Module) string {
	for _, m := range mods {
		base := filepath.Base(m.Path)
		if m.Path == lc.mod.Path || strings.HasPrefix(base, "ld-") {
			continue
		}
		fh, err := w.s.OpenFile(m.Path)
		if err != nil {
			continue
		}
		f, err := elfsym.Open(fh)
		if err != nil {
			fh.Close()
			continue
		}
		syms, _ := f.ELF().DynamicSymbols()
		fh.Close()
		for _, sym := range syms {
			if sym.Name == "malloc" && sym.Section != elf.SHN_UNDEF && elf.ST_TYPE(sym.Info) == elf.STT_FUNC {
				return fmt.Sprintf("this process allocates with the malloc of %s; heapsift analyzes glibc malloc only", m.Path)
			}
		}
	}
	return ""
}

// memBuildID reads the build-id of the ELF image mapped at start.
func memBuildID(s addrspace.Space, start addrspace.Addr) []byte {
	hdr := make([]byte, 4096)
	if _, err := s.ReadAt(hdr, start); err != nil || string(hdr[:4]) != "\x7fELF" {
		return nil
	}
	phoff := binary.LittleEndian.Uint64(hdr[0x20:])
	phnum := int(binary.LittleEndian.Uint16(hdr[0x38:]))
	for i := 0; i < phnum && phoff+uint64(i+1)*56 <= uint64(len(hdr)); i++ {
		ph := hdr[phoff+uint64(i)*56:]
		if elf.ProgType(binary.LittleEndian.Uint32(ph)) != elf.PT_NOTE {
			continue
		}
		off := binary.LittleEndian.Uint64(ph[8:])
		sz := binary.LittleEndian.Uint64(ph[32:])
		if off+sz <= uint64(len(hdr)) {
			if id := elfsym.ParseBuildID(hdr[off : off+sz]); id != nil {
				return id
			}
		}
	}
	return nil
}

// memBanner looks for the release banner in libc's read-only mappings.
func memBanner(s addrspace.Space, m addrspace.Module) (int, int, string, bool) {
	for _, mp := range m.Mappings {
		if mp.Perm&addrspace.Write != 0 || mp.Perm&addrspace.Exec != 0 || mp.Size() > 64<<20 {
			continue
		}
		b := make([]byte, mp.Size())
		if _, err := s.ReadAt(b, mp.Start); err != nil {
			continue
		}
		if ma, mi, t, ok := elfsym.ParseBanner(b); ok {
			return ma, mi, t, true
		}
	}
	return 0, 0, "", false
}

// candidate is a possible address of a structure and how it was found.
type candidate struct {
	addr uint64
	how  string
}

// mainArenaCandidates lists every way to find main_arena, best first.
func mainArenaCandidates(lc *libc, l *Layout) []candidate {
	var out []candidate
	f := lc.file
	if f == nil {
		return nil
	}
	if lc.debug != "" {
		if sym, ok := f.Lookup("main_arena"); ok {
			out = append(out, candidate{sym.Value + lc.bias, "debug symbols (" + lc.debug + ")"})
		}
	}
	if relocs, err := f.Relocs(); err == nil {
		for _, r := range relocs {
			if r.Type == elf.R_X86_64_RELATIVE && r.Offset-l.ArenaNext == r.Addend && arenaImageOK(f, r.Addend, l) {
				out = append(out, candidate{r.Addend + lc.bias, "relocation of main_arena.next"})
			}
		}
	}
	for _, fn := range []string{"malloc_trim", "mallinfo2", "mallinfo", "malloc_stats"} {
		if a, ok := firstRIPLea(f, fn); ok {
			out = append(out, candidate{a + lc.bias, "disassembly of " + fn})
		}
	}
	return out
}

// arenaImageOK checks main_arena's on-disk image: all zero but next and
// attached_threads.
func arenaImageOK(f *elfsym.File, a uint64, l *Layout) bool {
	b, err := f.ReadVaddr(a, int(l.ArenaSize))
	if err != nil {
		return false
	}
	for off := uint64(0); off+8 <= l.ArenaSize; off += 8 {
		w := binary.LittleEndian.Uint64(b[off:])
		switch {
		case off == l.ArenaNext:
			if w != a && w != 0 {
				return false
			}
		case l.ArenaAttached >= 0 && off == uint64(l.ArenaAttached):
			if w > 1 {
				return false
			}
		case w != 0:
			return false
		}
	}
	return true
}

// firstRIPLea returns the target of the first RIP-relative LEA into a
// writable segment in the exported function fn.
func firstRIPLea(f *elfsym.File, fn string) (uint64, bool) {
	sym, ok := f.Lookup(fn)
	if !ok || sym.Type != elf.STT_FUNC {
		return 0, false
	}
	n := int(min(max(sym.Size, 64), 1024))
	code, err := f.ReadVaddr(sym.Value, n)
	if err != nil {
		return 0, false
	}
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil {
			pc++
			continue
		}
		next := sym.Value + uint64(pc+inst.Len)
		pc += inst.Len
		if inst.Op != x86asm.LEA {
			continue
		}
		if m, ok := inst.Args[1].(x86asm.Mem); ok && m.Base == x86asm.RIP {
			t := next + uint64(m.Disp)
			if inWritable(f, t) {
				return t, true
			}
		}
	}
	return 0, false
}

func inWritable(f *elfsym.File, v uint64) bool {
	for _, p := range f.Loads() {
		if p.Flags&elf.PF_W != 0 && v >= p.Vaddr && v < p.Vaddr+p.Memsz {
			return true
		}
	}
	return false
}

// mpCandidates lists ways to find mp_: its symbol, or its default image
// in libc's .data.
func mpCandidates(lc *libc, l *Layout) []candidate {
	f := lc.file
	if f == nil {
		return nil
	}
	var out []candidate
	if lc.debug != "" {
		if sym, ok := f.Lookup("mp_"); ok {
			out = append(out, candidate{sym.Value + lc.bias, "debug symbols (" + lc.debug + ")"})
		}
	}
	data, addr := f.SectionData(".data")
	for off := 0; off+int(l.MpSize) <= len(data); off += 8 {
		w := func(o uint64) uint64 { return binary.LittleEndian.Uint64(data[off+int(o):]) }
		if w(0) != 0x20000 || w(8) != 0x20000 || w(0x10) != 0x20000 || w(0x18) != 8 {
			continue
		}
		if l.MpTcacheCount >= 0 && w(uint64(l.MpTcacheCount)) != uint64(l.TcacheFillCount) {
			continue
		}
		out = append(out, candidate{addr + uint64(off) + lc.bias, "default image in libc .data"})
	}
	return out
}

// tcacheSlots returns the runtime addresses of libc GOT slots that hold
// TLS offsets (R_X86_64_TPOFF64), the one for `tcache` first when debug
// symbols tell which it is.
func tcacheSlots(lc *libc) (slots []uint64, how string) {
	f := lc.file
	if f == nil {
		return nil, ""
	}
	relocs, err := f.Relocs()
	if err != nil {
		return nil, ""
	}
	want := int64(-1)
	if lc.debug != "" {
		if sym, ok := f.Lookup("tcache"); ok && sym.Type == elf.STT_TLS {
			want = int64(sym.Value)
		}
	}
	for _, r := range relocs {
		if r.Type != elf.R_X86_64_TPOFF64 || r.Sym != "" {
			continue
		}
		if want >= 0 && int64(r.Addend) == want {
			return []uint64{r.Offset + lc.bias}, "TPOFF64 GOT slot of `tcache` (debug symbols)"
		}
		slots = append(slots, r.Offset+lc.bias)
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i] < slots[j] })
	return slots, "TPOFF64 GOT slot validated by the tcache chunk size"
}
