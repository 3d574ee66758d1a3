package report

import (
	"encoding/binary"
	"path/filepath"
	"sort"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/elfsym"
)

// wordClass is what a pointer-sized word of a chunk looks like.
type wordClass byte

const (
	wZero   wordClass = 'z'
	wHeap   wordClass = 'h'
	wModule wordClass = 'm'
	wStack  wordClass = 's'
	wText   wordClass = 't'
	wSmall  wordClass = 'i'
	wOther  wordClass = 'x'
)

// space classifies addresses: heap, module (with symbol), stack.
type space struct {
	s           addrspace.Space
	heapLo      uint64
	heapHi      uint64
	inHeap      func(uint64) bool
	mods        []addrspace.Module
	files       map[string]*elfsym.File // nil entry: could not open
	stacks      []addrspace.Mapping
	demangl     func(string) (string, bool) // vtable symbol -> type
	demangleSym func(string) (string, bool) // any _Z symbol
	// NoTypes explains why type names are unavailable, when they are.
	noTypes map[string]string
}

func newSpace(s addrspace.Space, inHeap func(uint64) bool, lo, hi uint64, demangle func(string) (string, bool)) *space {
	sp := &space{s: s, inHeap: inHeap, heapLo: lo, heapHi: hi, files: map[string]*elfsym.File{},
		demangl: demangle, noTypes: map[string]string{}}
	maps := s.Mappings()
	sp.mods = addrspace.Modules(maps)
	for _, t := range s.Threads() {
		if m := addrspace.Find(maps, addrspace.Addr(t.Regs.Rsp)); m != nil {
			sp.stacks = append(sp.stacks, *m)
		}
	}
	sort.Slice(sp.stacks, func(i, j int) bool { return sp.stacks[i].Start < sp.stacks[j].Start })
	return sp
}

func (sp *space) module(v uint64) *addrspace.Module {
	i := sort.Search(len(sp.mods), func(i int) bool { return uint64(sp.mods[i].End) > v })
	if i < len(sp.mods) && uint64(sp.mods[i].Start) <= v {
		return &sp.mods[i]
	}
	return nil
}

func (sp *space) classify(w uint64) wordClass {
	switch {
	case w == 0:
		return wZero
	case w >= sp.heapLo && w < sp.heapHi && sp.inHeap(w):
		return wHeap
	case sp.module(w) != nil:
		return wModule
	case addrspace.Find(sp.stacks, addrspace.Addr(w)) != nil:
		return wStack
	case isText(w):
		return wText
	case w < 1<<16:
		return wSmall
	}
	return wOther
}

func isText(w uint64) bool {
	printable := 0
	for i := 0; i < 8; i++ {
		c := byte(w >> (8 * i))
		switch {
		case c >= 0x20 && c < 0x7f, c == '\n', c == '\t':
			printable++
		case c == 0:
		default:
			return false
		}
	}
	return printable > 0
}

// file opens (once) the ELF file of a module.
func (sp *space) file(mod *addrspace.Module) *elfsym.File {
	if f, ok := sp.files[mod.Path]; ok {
		return f
	}
	var f *elfsym.File
	if fh, err := sp.s.OpenFile(mod.Path); err == nil {
		if ef, err := elfsym.Open(fh); err == nil {
			if p := elfsym.FindDebugFile(ef, mod.Path, elfsym.DefaultDebugDirs); p != "" {
				if d, err := elfsym.OpenPath(p); err == nil {
					ef.AttachDebug(d, p)
				}
			}
			f = ef
		} else {
			sp.noTypes[mod.Path] = err.Error()
		}
	} else {
		sp.noTypes[mod.Path] = "file not available"
	}
	sp.files[mod.Path] = f
	return f
}

// symbol names the symbol that contains v, with the module's base name.
func (sp *space) symbol(v uint64) (mod, sym string, off uint64) {
	m := sp.module(v)
	if m == nil {
		return "", "", 0
	}
	mod = filepath.Base(m.Path)
	f := sp.file(m)
	if f == nil {
		return mod, "", v - uint64(m.Start)
	}
	bias := uint64(m.Start) - f.LinkBase()
	if s, ok := f.SymbolAt(v - bias); ok {
		return mod, s.Name, v - bias - s.Value
	}
	return mod, "", v - uint64(m.Start)
}

// typeOf names the C++ type of an object whose first word is w, when w
// points into a vtable.
// It also returns the base name of the module that holds the vtable.
func (sp *space) typeOf(w uint64) (typ, module string) {
	if w == 0 || w&7 != 0 || sp.module(w) == nil {
		return "", ""
	}
	mod, sym, _ := sp.symbol(w)
	if len(sym) < 5 || sym[:4] != "_ZTV" {
		return "", ""
	}
	if sp.demangl != nil {
		if t, ok := sp.demangl(sym); ok {
			return t, mod
		}
	}
	return sym, mod
}

// pointerMark replaces a pointer word in a chunk's bytes: non-printable,
// so that strings are never read out of pointers, and equal for every
// pointer into the same place. Type detection reads the original word.
const pointerMark = 0xff

// maskPointers returns head with every word that points into the heap, a
// module or a stack replaced by pointerMark bytes; the first word is kept
// when it points into a module (a vtable: the type).
func (sp *space) maskPointers(head []byte) []byte {
	out := append([]byte(nil), head...)
	for off := 0; off+8 <= len(out); off += 8 {
		w := binary.LittleEndian.Uint64(out[off:])
		switch sp.classify(w) {
		case wHeap, wStack:
		case wModule:
			if off == 0 {
				continue
			}
		default:
			continue
		}
		for i := 0; i < 8; i++ {
			out[off+i] = pointerMark
		}
	}
	return out
}
