package corefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
)

// memSpace is a small in-memory address space for writer tests.
type memSpace struct {
	maps    []addrspace.Mapping
	mem     map[addrspace.Addr][]byte // by mapping start
	threads []addrspace.Thread
}

func (m *memSpace) Info() addrspace.Info {
	return addrspace.Info{PID: 4242, Executable: "/usr/bin/prog", Args: []string{"/usr/bin/prog", "-x"}}
}
func (m *memSpace) Mappings() []addrspace.Mapping     { return m.maps }
func (m *memSpace) Threads() []addrspace.Thread       { return m.threads }
func (m *memSpace) Warnings() []string                { return nil }
func (m *memSpace) OpenFile(string) (*os.File, error) { return nil, os.ErrNotExist }
func (m *memSpace) ReadAt(p []byte, a addrspace.Addr) (int, error) {
	mp := addrspace.Find(m.maps, a)
	if mp == nil || a+addrspace.Addr(len(p)) > mp.End {
		return 0, addrspace.ErrUnreadable
	}
	return copy(p, m.mem[mp.Start][a-mp.Start:]), nil
}

func sampleSpace() *memSpace {
	s := &memSpace{mem: map[addrspace.Addr][]byte{}}
	add := func(start addrspace.Addr, size int, perm addrspace.Perm, path string, fill byte) {
		s.maps = append(s.maps, addrspace.Mapping{Start: start, End: start + addrspace.Addr(size), Perm: perm, Path: path})
		b := bytes.Repeat([]byte{fill}, size)
		binary.LittleEndian.PutUint64(b, uint64(start))
		s.mem[start] = b
	}
	add(0x400000, 0x1000, addrspace.Read, "/usr/bin/prog", 1)
	add(0x401000, 0x2000, addrspace.Read|addrspace.Write, "/usr/bin/prog", 2)
	add(0x7f0000000000, 0x3000, addrspace.Read|addrspace.Write, "", 3)
	vec := make([]byte, 832)
	vec[160] = 0xaa
	s.threads = []addrspace.Thread{
		{TID: 4242, Regs: addrspace.Regs{Rip: 0x401234, Rsp: 0x7f0000002f00, FsBase: 0x7f0000001000, R12: 0xdead}, Vector: vec},
		{TID: 4243, Regs: addrspace.Regs{Rip: 0x401238, Rsp: 0x7f0000002000}},
	}
	s.maps[1].Offset = 0x1000
	return s
}

func writeSample(t testing.TB) []byte {
	var buf bytes.Buffer
	warns, err := Write(&buf, sampleSpace(), nil)
	if err != nil || len(warns) > 0 {
		t.Fatalf("Write: %v %v", warns, err)
	}
	return buf.Bytes()
}

func TestWriteParseRoundTrip(t *testing.T) {
	src := sampleSpace()
	c, err := Parse(writeSample(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Info(); got.PID != 4242 || strings.Join(got.Args, " ") != "/usr/bin/prog -x" || got.Executable != "/usr/bin/prog" {
		t.Errorf("info = %+v", got)
	}
	if len(c.Threads()) != 2 || c.Threads()[0].Regs != src.threads[0].Regs || c.Threads()[1].TID != 4243 {
		t.Errorf("threads = %+v", c.Threads())
	}
	if !bytes.Equal(c.Threads()[0].Vector, src.threads[0].Vector) {
		t.Errorf("vector registers differ")
	}
	if len(c.Mappings()) != 3 {
		t.Fatalf("mappings = %v", c.Mappings())
	}
	for i, m := range c.Mappings() {
		want := src.maps[i]
		if m.Start != want.Start || m.End != want.End || m.Perm != want.Perm || m.Path != want.Path || m.Offset != want.Offset {
			t.Errorf("mapping %d = %v, want %v", i, m.String(), want.String())
		}
		got := make([]byte, m.Size())
		if _, err := c.ReadAt(got, m.Start); err != nil || !bytes.Equal(got, src.mem[m.Start]) {
			t.Errorf("contents of %v differ (%v)", m.String(), err)
		}
	}
	if _, err := c.ReadAt(make([]byte, 8), 0x10); !errors.Is(err, addrspace.ErrUnreadable) {
		t.Errorf("read of unmapped memory: %v", err)
	}
}

func TestDamagedCores(t *testing.T) {
	good := writeSample(t)
	exe, _ := os.ReadFile("/proc/self/exe")
	foreign := append([]byte(nil), good...)
	binary.LittleEndian.PutUint16(foreign[18:], 183) // EM_AARCH64
	noNotes := append([]byte(nil), good...)
	binary.LittleEndian.PutUint32(noNotes[64:], 0) // PT_NOTE -> PT_NULL
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "no ELF header"},
		{"text", []byte("this is not a core file at all, just some text........................"), "no ELF header"},
		{"executable", exe, "ELF type is ET_EXEC"},
		{"foreign", foreign, "machine is EM_AARCH64"},
		{"no notes", noNotes, "no PT_NOTE"},
		{"headers cut", good[:100], "truncated"},
		{"zstd", append([]byte("\x28\xb5\x2f\xfd"), good...), "zstd-compressed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.data, Options{})
			if tc.name == "executable" && err != nil && strings.Contains(err.Error(), "ET_DYN") {
				return // a PIE test binary
			}
			if err == nil || !errors.Is(err, ErrNotCore) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	// A core cut in its memory keeps what it has and says so.
	c, err := Parse(good[:len(good)-0x1800], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Warnings(), "\n"), "truncated") {
		t.Errorf("no truncation warning: %v", c.Warnings())
	}
	if _, err := c.ReadAt(make([]byte, 8), 0x7f0000002ff8); err == nil {
		t.Errorf("read past the truncation succeeded")
	}
}

func FuzzParse(f *testing.F) {
	good := writeSample(f)
	f.Add(good)
	f.Add(good[:200])
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, Options{})
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for _, m := range c.Mappings() {
			c.ReadAt(buf, m.Start)
			c.ReadAt(buf, m.End-8)
		}
		for _, th := range c.Threads() {
			th.VectorWords()
		}
	})
}
