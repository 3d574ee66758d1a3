// Package elfsym reads what heapsift needs from the ELF file of a loaded
// module: symbols (also from a separate debug file found by build-id),
// dynamic relocations (RELA and RELR), the build-id, and bytes at link-time
// addresses. It never trusts its input: a malformed file gives an error.
package elfsym

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// A Symbol is a named address in a module, at its link-time value.
type Symbol struct {
	Name  string
	Value uint64
	Size  uint64
	Type  elf.SymType
}

// A Reloc is one dynamic relocation.
type Reloc struct {
	Offset uint64 // link-time address of the patched word
	Type   elf.R_X86_64
	Addend uint64 // for RELR, the word stored in the file at Offset
	Sym    string // symbol name, "" for none
}

// File is a parsed ELF object.
type File struct {
	f      *elf.File
	loads  []elf.ProgHeader
	syms   []Symbol // by value, lazily built
	byName map[string]Symbol
	debug  *File // separate debug file, if attached
	// DebugPath is the debug file whose symbols were merged, if any.
	DebugPath string
}

// ErrNotELF is returned for input that is not an x86-64 ELF file.
var ErrNotELF = errors.New("not an x86-64 ELF file")

// Open parses an ELF file. The reader must stay valid while File is used.
func Open(r io.ReaderAt) (f *File, err error) {
	defer func() {
		if p := recover(); p != nil { // debug/elf on hostile input
			f, err = nil, fmt.Errorf("%w: malformed (%v)", ErrNotELF, p)
		}
	}()
	ef, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotELF, err)
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		return nil, fmt.Errorf("%w: %s %s", ErrNotELF, ef.Class, ef.Machine)
	}
	f = &File{f: ef}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			f.loads = append(f.loads, p.ProgHeader)
		}
	}
	return f, nil
}

// OpenPath opens and parses the ELF file at path. The file stays open for
// the life of the process (modules are few).
func OpenPath(path string) (*File, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	f, err := Open(fh)
	if err != nil {
		fh.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ELF returns the underlying debug/elf file.
func (f *File) ELF() *elf.File { return f.f }

// LinkBase returns the link-time address of the first loadable byte of the
// file (p_vaddr - p_offset of the first PT_LOAD): the runtime load bias is
// the module's mapping start minus LinkBase.
func (f *File) LinkBase() uint64 {
	if len(f.loads) == 0 {
		return 0
	}
	p := f.loads[0]
	return (p.Vaddr - p.Off) &^ 0xfff
}

// Loads returns the PT_LOAD program headers.
func (f *File) Loads() []elf.ProgHeader { return f.loads }

// BuildID returns the GNU build-id, or nil.
func (f *File) BuildID() []byte {
	for _, p := range f.f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if p.Filesz > maxNotes {
			continue
		}
		data := make([]byte, p.Filesz)
		if _, err := p.ReadAt(data, 0); err != nil {
			continue
		}
		if id := ParseBuildID(data); id != nil {
			return id
		}
	}
	if s := f.f.Section(".note.gnu.build-id"); s != nil {
		if data, err := s.Data(); err == nil {
			return ParseBuildID(data)
		}
	}
	return nil
}

// ParseBuildID finds an NT_GNU_BUILD_ID note in a run of ELF notes.
func ParseBuildID(notes []byte) []byte {
	for len(notes) >= 12 {
		nsz := binary.LittleEndian.Uint32(notes[0:])
		dsz := binary.LittleEndian.Uint32(notes[4:])
		typ := binary.LittleEndian.Uint32(notes[8:])
		name := align4(uint64(nsz))
		desc := align4(uint64(dsz))
		if 12+name+desc > uint64(len(notes)) {
			return nil
		}
		if typ == 3 && nsz == 4 && string(notes[12:15]) == "GNU" {
			return append([]byte(nil), notes[12+name:12+name+uint64(dsz)]...)
		}
		notes = notes[12+name+desc:]
	}
	return nil
}

func align4(n uint64) uint64 { return (n + 3) &^ 3 }

// ReadVaddr reads n bytes of file contents at link-time address v. Bytes
// beyond a segment's file size (bss) read as zero.
func (f *File) ReadVaddr(v uint64, n int) ([]byte, error) {
	if n < 0 || n > maxSegment {
		return nil, fmt.Errorf("read of %d bytes refused", n)
	}
	for _, p := range f.loads {
		if v >= p.Vaddr && v+uint64(n) <= p.Vaddr+p.Memsz {
			out := make([]byte, n)
			off := v - p.Vaddr
			if off < p.Filesz {
				m := min(uint64(n), p.Filesz-off)
				if err := f.readFileAt(out[:m], p.Off+off); err != nil {
					return nil, err
				}
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("address %#x is in no loadable segment", v)
}

func (f *File) readFileAt(b []byte, off uint64) error {
	for _, p := range f.f.Progs {
		if p.Type == elf.PT_LOAD && off >= p.Off && off+uint64(len(b)) <= p.Off+p.Filesz {
			_, err := p.ReadAt(b, int64(off-p.Off))
			return err
		}
	}
	return fmt.Errorf("file offset %#x is outside every segment", off)
}

// SectionData returns the contents of the named section, or nil.
func (f *File) SectionData(name string) (data []byte, addr uint64) {
	s := f.f.Section(name)
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, 0
	}
	d, err := s.Data()
	if err != nil {
		return nil, 0
	}
	return d, s.Addr
}

// AttachDebug merges the symbols of a separate debug file.
func (f *File) AttachDebug(d *File, path string) {
	f.debug = d
	f.DebugPath = path
	f.syms, f.byName = nil, nil
}

// FindDebugFile looks for the separate debug file of f by build-id under
// each directory of dirs (each like /usr/lib/debug), then by .gnu_debuglink
// next to the file's path. It returns "" when none matches.
func FindDebugFile(f *File, path string, dirs []string) string {
	id := f.BuildID()
	if len(id) >= 2 {
		h := fmt.Sprintf("%x", id)
		for _, d := range dirs {
			p := filepath.Join(d, ".build-id", h[:2], h[2:]+".debug")
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if data, _ := f.SectionData(".gnu_debuglink"); len(data) > 0 {
		name := string(data[:max(0, bytes.IndexByte(data, 0))])
		if name != "" {
			dir := filepath.Dir(path)
			cands := []string{filepath.Join(dir, name), filepath.Join(dir, ".debug", name)}
			for _, d := range dirs {
				cands = append(cands, filepath.Join(d, dir, name))
			}
			for _, p := range cands {
				if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && p != path {
					return p
				}
			}
		}
	}
	return ""
}

// DefaultDebugDirs are the usual global debug directories.
var DefaultDebugDirs = []string{"/usr/lib/debug"}

func (f *File) loadSymbols() {
	if f.byName != nil {
		return
	}
	f.byName = map[string]Symbol{}
	add := func(ss []elf.Symbol) {
		for _, s := range ss {
			if s.Name == "" || elf.ST_TYPE(s.Info) == elf.STT_SECTION || elf.ST_TYPE(s.Info) == elf.STT_FILE {
				continue
			}
			if s.Section == elf.SHN_UNDEF {
				continue
			}
			name := s.Name
			if i := strings.IndexByte(name, '@'); i > 0 {
				name = name[:i]
			}
			sym := Symbol{Name: name, Value: s.Value, Size: s.Size, Type: elf.ST_TYPE(s.Info)}
			if _, ok := f.byName[name]; !ok {
				f.byName[name] = sym
				f.syms = append(f.syms, sym)
			}
		}
	}
	for _, src := range []*File{f.debug, f} {
		if src == nil {
			continue
		}
		if ss, err := src.f.Symbols(); err == nil {
			add(ss)
		}
		if ss, err := src.f.DynamicSymbols(); err == nil {
			add(ss)
		}
	}
	sort.Slice(f.syms, func(i, j int) bool { return f.syms[i].Value < f.syms[j].Value })
}

// Lookup returns the symbol called name.
func (f *File) Lookup(name string) (Symbol, bool) {
	f.loadSymbols()
	s, ok := f.byName[name]
	return s, ok
}

// HasSymtab reports whether full (non-dynamic) symbols are available.
func (f *File) HasSymtab() bool {
	if f.debug != nil {
		return true
	}
	_, err := f.f.Symbols()
	return err == nil
}

// SymbolAt returns the data or function symbol that contains link-time
// address v (v within [Value, Value+Size)), preferring the smallest.
func (f *File) SymbolAt(v uint64) (Symbol, bool) {
	f.loadSymbols()
	i := sort.Search(len(f.syms), func(i int) bool { return f.syms[i].Value > v })
	var best Symbol
	found := false
	for j := i - 1; j >= 0 && j >= i-64; j-- {
		s := f.syms[j]
		if s.Type == elf.STT_TLS {
			continue
		}
		if v >= s.Value && v < s.Value+max(s.Size, 1) {
			if !found || s.Size < best.Size {
				best, found = s, true
			}
		}
	}
	return best, found
}

// Relocs returns every dynamic relocation (.rela.dyn and .relr.dyn; the
// PLT relocations are not needed here).
func (f *File) Relocs() ([]Reloc, error) {
	var out []Reloc
	dsyms, _ := f.f.DynamicSymbols()
	for _, s := range f.f.Sections {
		switch s.Type {
		case elf.SHT_RELA:
			if s.Name == ".rela.plt" {
				continue
			}
			data, err := s.Data()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
			for i := 0; i+24 <= len(data); i += 24 {
				info := binary.LittleEndian.Uint64(data[i+8:])
				r := Reloc{
					Offset: binary.LittleEndian.Uint64(data[i:]),
					Type:   elf.R_X86_64(info & 0xffffffff),
					Addend: binary.LittleEndian.Uint64(data[i+16:]),
				}
				if si := info >> 32; si > 0 && int(si-1) < len(dsyms) {
					r.Sym = dsyms[si-1].Name
				}
				out = append(out, r)
			}
		case shtRELR:
			data, err := s.Data()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.Name, err)
			}
			for _, off := range DecodeRELR(data) {
				var w [8]byte
				if b, err := f.ReadVaddr(off, 8); err == nil {
					copy(w[:], b)
				}
				out = append(out, Reloc{Offset: off, Type: elf.R_X86_64_RELATIVE, Addend: binary.LittleEndian.Uint64(w[:])})
			}
		}
	}
	return out, nil
}

// DecodeRELR expands a packed SHT_RELR table into relocated addresses.
func DecodeRELR(data []byte) []uint64 {
	var out []uint64
	var where uint64
	for i := 0; i+8 <= len(data); i += 8 {
		e := binary.LittleEndian.Uint64(data[i:])
		if e&1 == 0 {
			out = append(out, e)
			where = e + 8
			continue
		}
		for j, bits := uint64(0), e>>1; bits != 0 && j < 63; j, bits = j+1, bits>>1 {
			if bits&1 != 0 {
				out = append(out, where+j*8)
			}
		}
		where += 63 * 8
		if len(out) > 1<<24 {
			break // hostile input
		}
	}
	return out
}

// Banner returns glibc's version from the "release version 2.NN" banner
// in .rodata, or ok=false when the file carries none.
func (f *File) Banner() (major, minor int, text string, ok bool) {
	data, _ := f.SectionData(".rodata")
	if data == nil {
		for _, p := range f.loads {
			if p.Flags&elf.PF_W == 0 && p.Flags&elf.PF_X == 0 && p.Filesz < maxSegment {
				b := make([]byte, p.Filesz)
				if err := f.readFileAt(b, p.Off); err == nil {
					data = append(data, b...)
				}
			}
		}
	}
	return ParseBanner(data)
}

// ParseBanner finds glibc's "... release version 2.NN." banner in data.
func ParseBanner(data []byte) (major, minor int, text string, ok bool) {
	key := []byte("release version ")
	for off := 0; ; {
		i := bytes.Index(data[off:], key)
		if i < 0 {
			return 0, 0, "", false
		}
		i += off
		var a, b int
		if n, _ := fmt.Sscanf(string(data[i+len(key):min(len(data), i+len(key)+8)]), "%d.%d", &a, &b); n == 2 {
			start := bytes.LastIndexByte(data[:i], 0) + 1
			end := i + bytes.IndexByte(data[i:], 0)
			if end < i {
				end = len(data)
			}
			return a, b, strings.TrimSpace(string(data[start:end])), true
		}
		off = i + len(key)
	}
}

// Limits on what a (possibly hostile) file can make us allocate.
const (
	maxNotes   = 1 << 20
	maxSegment = 64 << 20
)

// shtRELR is SHT_RELR (packed relative relocations), not named by debug/elf.
const shtRELR elf.SectionType = 19
