// Package addrspace defines a frozen address space: the mappings, memory,
// threads and loaded modules of a stopped process or of a core file.
//
// A live process (package ptrace) and a core file (package corefile) both
// implement Space, so that heapwalk, scan and report never care where the
// bytes came from.
package addrspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"unsafe"
)

// Addr is an address in the target's address space.
type Addr uint64

// String formats a as lowercase hex with a 0x prefix.
func (a Addr) String() string { return fmt.Sprintf("%#x", uint64(a)) }

// Add returns a+n.
func (a Addr) Add(n int64) Addr { return Addr(int64(a) + n) }

// Sub returns a-b as a signed byte count.
func (a Addr) Sub(b Addr) int64 { return int64(a - b) }

// AlignUp rounds a up to a multiple of n, a power of two.
func (a Addr) AlignUp(n uint64) Addr { return Addr((uint64(a) + n - 1) &^ (n - 1)) }

// AlignDown rounds a down to a multiple of n, a power of two.
func (a Addr) AlignDown(n uint64) Addr { return Addr(uint64(a) &^ (n - 1)) }

// Perm is the protection of a mapping.
type Perm uint8

// Permission bits, as in /proc/PID/maps.
const (
	Read Perm = 1 << iota
	Write
	Exec
	Shared // MAP_SHARED ('s'), otherwise private ('p')
)

// String prints p like /proc/PID/maps does: "rw-p".
func (p Perm) String() string {
	b := []byte("---p")
	if p&Read != 0 {
		b[0] = 'r'
	}
	if p&Write != 0 {
		b[1] = 'w'
	}
	if p&Exec != 0 {
		b[2] = 'x'
	}
	if p&Shared != 0 {
		b[3] = 's'
	}
	return string(b)
}

// ParsePerm parses the permission column of /proc/PID/maps.
func ParsePerm(s string) Perm {
	var p Perm
	if len(s) >= 4 {
		if s[0] == 'r' {
			p |= Read
		}
		if s[1] == 'w' {
			p |= Write
		}
		if s[2] == 'x' {
			p |= Exec
		}
		if s[3] == 's' {
			p |= Shared
		}
	}
	return p
}

// A Mapping is one contiguous range of the address space with one
// protection and one backing.
type Mapping struct {
	Start, End Addr // [Start, End)
	Perm       Perm
	Offset     uint64 // offset of Start in the backing file
	Dev        string // "maj:min" of the backing file, "" if unknown
	Inode      uint64
	// Path is the backing file as the target names it, or a pseudo-name
	// such as "[heap]", "[stack]", "[vdso]"; "" for anonymous memory.
	Path string
	// Deleted reports a backing file that was removed ("(deleted)").
	Deleted bool
	// Missing reports a range whose contents are not available (for
	// example a core that did not dump it). Reads from it fail.
	Missing bool
}

// Size returns the length of m in bytes.
func (m *Mapping) Size() uint64 { return uint64(m.End - m.Start) }

// Contains reports whether a lies in m.
func (m *Mapping) Contains(a Addr) bool { return a >= m.Start && a < m.End }

// Anonymous reports whether m has no backing file (pseudo-files such as
// [heap] and [stack] are anonymous memory too).
func (m *Mapping) Anonymous() bool { return m.Path == "" || m.Path[0] == '[' }

// File reports whether m is backed by a real file.
func (m *Mapping) File() bool { return m.Path != "" && m.Path[0] == '/' }

// String formats m like a line of /proc/PID/maps.
func (m *Mapping) String() string {
	return fmt.Sprintf("%x-%x %s %08x %s", uint64(m.Start), uint64(m.End), m.Perm, m.Offset, m.Path)
}

// Regs are a thread's general-purpose registers, in the order of the
// kernel's x86-64 user_regs_struct (the same order as NT_PRSTATUS).
type Regs struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8  uint64
	Rax, Rcx, Rdx, Rsi, Rdi, OrigRax, Rip, Cs       uint64
	Eflags, Rsp, Ss, FsBase, GsBase, Ds, Es, Fs, Gs uint64
}

// NumRegs is the number of words in Regs.
const NumRegs = 27

// Words returns the registers as a slice in user_regs_struct order.
func (r *Regs) Words() []uint64 {
	return []uint64{r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10, r.R9, r.R8,
		r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.OrigRax, r.Rip, r.Cs,
		r.Eflags, r.Rsp, r.Ss, r.FsBase, r.GsBase, r.Ds, r.Es, r.Fs, r.Gs}
}

// RegsFromWords builds Regs from words in user_regs_struct order.
func RegsFromWords(w []uint64) Regs {
	var v [NumRegs]uint64
	copy(v[:], w)
	return Regs{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
		v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17],
		v[18], v[19], v[20], v[21], v[22], v[23], v[24], v[25], v[26]}
}

// A Thread is one stopped thread of the target.
type Thread struct {
	TID  int
	Regs Regs
	// Vector is the raw extended register state (the XSAVE area from
	// NT_X86_XSTATE, or the 512-byte FXSAVE area), nil when unavailable.
	// Compilers keep pointers in vector registers, so it is a root.
	Vector []byte
}

// VectorWords returns the 8-byte words of the thread's vector registers:
// xmm0-15 from the legacy area, and every word of the extended area.
func (t *Thread) VectorWords() []uint64 {
	v := t.Vector
	var out []uint64
	const xmmStart, xmmEnd = 160, 160 + 16*16
	if len(v) >= xmmEnd {
		for i := xmmStart; i < xmmEnd; i += 8 {
			out = append(out, binary.LittleEndian.Uint64(v[i:]))
		}
	}
	for i := 576; i+8 <= len(v); i += 8 { // XSAVE extended components
		out = append(out, binary.LittleEndian.Uint64(v[i:]))
	}
	return out
}

// A Module is an ELF object mapped into the target: the executable, a
// shared library or the dynamic loader.
type Module struct {
	Path string // as the target names it
	// Start is the lowest address of the module's mappings, which is
	// where the mapping of file offset 0 (the ELF header) sits.
	Start, End Addr
	Mappings   []Mapping
}

// Info describes what was frozen.
type Info struct {
	PID        int      // the process id (from the core's notes for a core)
	Core       string   // the core file's path, "" for a live process
	Executable string   // the main executable's path, as the target names it
	Args       []string // the command line, when known
}

// ErrUnreadable is returned (wrapped) by reads of memory that the space
// does not hold.
var ErrUnreadable = errors.New("memory not readable")

// Space is a frozen address space.
type Space interface {
	// Info describes the target.
	Info() Info
	// Mappings returns every mapping, sorted by address.
	Mappings() []Mapping
	// Threads returns every thread with its registers. The first one is
	// the thread that represents the process (the main thread, or the
	// one that crashed in a core).
	Threads() []Thread
	// ReadAt reads len(p) bytes at addr. Like io.ReaderAt, it returns
	// n < len(p) only with a non-nil error. It must be safe to call from
	// several goroutines at once.
	ReadAt(p []byte, addr Addr) (n int, err error)
	// OpenFile opens the file that backs a mapping, as the target names
	// it (for a core, through the sysroot and search path).
	OpenFile(path string) (*os.File, error)
	// Warnings lists what the space could not provide faithfully.
	Warnings() []string
}

// Modules groups the file-backed mappings of a space by path into modules,
// in address order. A module starts at its mapping of file offset 0.
func Modules(maps []Mapping) []Module {
	var mods []Module
	idx := map[string]int{}
	for _, m := range maps {
		if !m.File() || SharedMemory(m.Path) {
			continue
		}
		i, ok := idx[m.Path]
		if !ok {
			if m.Offset != 0 {
				continue // a data file mapped at an offset, not an ELF image start
			}
			idx[m.Path] = len(mods)
			mods = append(mods, Module{Path: m.Path, Start: m.Start, End: m.End})
			i = len(mods) - 1
		}
		mod := &mods[i]
		if m.End > mod.End {
			mod.End = m.End
		}
		mod.Mappings = append(mod.Mappings, m)
	}
	// Anonymous mappings right after a module's last file mapping are
	// its bss; attach them so a module's writable data is complete.
	for i := range mods {
		mod := &mods[i]
		for _, m := range maps {
			if m.Start == mod.End && m.Path == "" && m.Perm&Write != 0 && isDataOf(mod, maps, m) {
				mod.Mappings = append(mod.Mappings, m)
				mod.End = m.End
			}
		}
	}
	sort.Slice(mods, func(i, j int) bool { return mods[i].Start < mods[j].Start })
	return mods
}

// isDataOf reports whether the anonymous mapping m follows a writable file
// mapping of mod directly (how the kernel maps .bss beyond the file).
func isDataOf(mod *Module, maps []Mapping, m Mapping) bool {
	last := mod.Mappings[len(mod.Mappings)-1]
	return last.End == m.Start && last.Perm&Write != 0
}

// Find returns the mapping that contains a, or nil.
func Find(maps []Mapping, a Addr) *Mapping {
	i := sort.Search(len(maps), func(i int) bool { return maps[i].End > a })
	if i < len(maps) && maps[i].Start <= a {
		return &maps[i]
	}
	return nil
}

// ReadUint64 reads a little-endian 8-byte word at a.
func ReadUint64(s Space, a Addr) (uint64, error) {
	var b [8]byte
	if _, err := s.ReadAt(b[:], a); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// Words views b, memory read from the target, as the little-endian 8-byte
// words it holds (the target is x86-64, as is heapsift), without copying:
// scanning a word at a time through encoding/binary runs at half the speed.
// A trailing part word is left out.
func Words(b []byte) []uint64 {
	if len(b) < 8 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/8)
}

// ReadFull reads exactly n bytes at a into a new slice.
func ReadFull(s Space, a Addr, n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := s.ReadAt(b, a); err != nil {
		return nil, err
	}
	return b, nil
}

// ReaderAt adapts a Space to io.ReaderAt, with offsets taken as addresses.
type ReaderAt struct{ S Space }

// ReadAt implements io.ReaderAt.
func (r ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := r.S.ReadAt(p, Addr(off))
	if err != nil && n < len(p) && errors.Is(err, ErrUnreadable) {
		return n, fmt.Errorf("%w: %v", io.ErrUnexpectedEOF, err)
	}
	return n, err
}

// IsStackName reports whether a pseudo-path names a stack.
func IsStackName(path string) bool { return strings.HasPrefix(path, "[stack") }

// A Req is one range of a batch read.
type Req struct {
	Addr Addr
	Buf  []byte // receives len(Buf) bytes at Addr
	// Err is set by ReadBatch: nil when all of Buf was read.
	Err error
}

// Vanishing is implemented by spaces that can disappear while they are
// read: a live process killed (SIGKILL reaches even a frozen one). Gone
// returns why once it has, and nil before: from then on reads fail, and
// an analysis must stop rather than take missing memory for an empty heap.
type Vanishing interface {
	Gone() error
}

// A BatchReader reads many ranges in few system calls. Spaces whose reads
// are expensive (a live process) implement it; callers fall back to ReadAt.
type BatchReader interface {
	// ReadBatch fills every request, setting each one's Err, and returns
	// a non-nil error when any request failed.
	ReadBatch(reqs []Req) error
}

// SharedMemory reports whether a mapping's path names shared memory
// rather than a file: MAP_SHARED|MAP_ANONYMOUS (/dev/zero), SysV shm
// (/SYSV...), memfd and POSIX shm (/dev/shm).
func SharedMemory(path string) bool {
	return strings.HasPrefix(path, "/dev/") || strings.HasPrefix(path, "/SYSV") || strings.HasPrefix(path, "/memfd:")
}
