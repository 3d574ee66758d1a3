package elfsym

import (
	"bytes"
	"debug/elf"
	"os"
	"testing"
)

const libcPath = "/usr/lib/x86_64-linux-gnu/libc.so.6"

func TestLibc(t *testing.T) {
	f, err := OpenPath(libcPath)
	if err != nil {
		t.Skipf("no glibc at %s: %v", libcPath, err)
	}
	if id := f.BuildID(); len(id) != 20 {
		t.Errorf("build-id %x", id)
	}
	ma, mi, text, ok := f.Banner()
	if !ok || ma != 2 || mi < 17 || !bytes.Contains([]byte(text), []byte("release version")) {
		t.Errorf("banner %d.%d %q %v", ma, mi, text, ok)
	}
	relocs, err := f.Relocs()
	if err != nil || len(relocs) == 0 {
		t.Fatalf("relocs: %d, %v", len(relocs), err)
	}
	tpoff := 0
	for _, r := range relocs {
		if r.Type == elf.R_X86_64_TPOFF64 {
			tpoff++
		}
	}
	if tpoff == 0 {
		t.Errorf("no TPOFF64 relocations in libc")
	}
	if s, ok := f.Lookup("malloc_trim"); !ok || s.Type != elf.STT_FUNC {
		t.Errorf("malloc_trim: %+v %v", s, ok)
	} else if at, ok := f.SymbolAt(s.Value + 4); !ok || at.Name != "malloc_trim" {
		t.Errorf("SymbolAt(malloc_trim+4) = %+v", at)
	}
}

func TestDecodeRELR(t *testing.T) {
	// An address entry, then a bitmap entry marking the 1st and 3rd words
	// after the 8 bytes that follow it.
	var b []byte
	le := func(v uint64) {
		for i := 0; i < 8; i++ {
			b = append(b, byte(v>>(8*i)))
		}
	}
	le(0x1000)
	le(0b101<<1 | 1)
	got := DecodeRELR(b)
	want := []uint64{0x1000, 0x1008, 0x1018}
	if len(got) != len(want) {
		t.Fatalf("got %#x", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %#x, want %#x", got, want)
		}
	}
}

func TestParseBanner(t *testing.T) {
	data := []byte("x\x00GNU C Library (Debian GLIBC 2.36-9) stable release version 2.36.\nmore\x00")
	ma, mi, text, ok := ParseBanner(data)
	if !ok || ma != 2 || mi != 36 || text[:3] != "GNU" {
		t.Errorf("%d %d %q %v", ma, mi, text, ok)
	}
	if _, _, _, ok := ParseBanner([]byte("release version x.y")); ok {
		t.Errorf("accepted a malformed banner")
	}
}

func FuzzOpen(f *testing.F) {
	if exe, err := os.ReadFile("/proc/self/exe"); err == nil {
		f.Add(exe[:min(len(exe), 8192)])
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Open(bytes.NewReader(data))
		if err != nil {
			return
		}
		file.BuildID()
		file.Banner()
		file.Relocs()
		file.SymbolAt(0x1000)
		file.LinkBase()
		file.ReadVaddr(0x1000, 16)
	})
}
