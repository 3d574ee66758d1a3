// Package corefile reads an ELF core dump (made by the kernel or by gdb's
// gcore) as a frozen address space: PT_LOAD segments give memory,
// NT_PRSTATUS notes give threads and registers, NT_FILE names the mapped
// files. Contents a core did not dump (read-only file data such as code and
// .rodata) are filled in from the named files when their build-id matches.
package corefile

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/elfsym"
)

// Options say where to find the files a core names, for a core made on
// another machine.
type Options struct {
	// Sysroot is prefixed to every absolute file path (like gdb's sysroot).
	Sysroot string
	// SolibSearchPath lists directories searched by file base name.
	SolibSearchPath []string
}

// ErrNotCore is returned (wrapped) for input that is not an x86-64 ELF core.
var ErrNotCore = errors.New("not an x86-64 ELF core file")

// segment is a PT_LOAD of the core.
type segment struct {
	start, end addrspace.Addr
	off        uint64 // offset in the core file
	filesz     uint64
}

// Core is an opened core file. It implements addrspace.Space.
type Core struct {
	path     string
	data     []byte // the whole core, mapped read-only
	segs     []segment
	maps     []addrspace.Mapping
	threads  []addrspace.Thread
	info     addrspace.Info
	opt      Options
	mu       sync.Mutex          // guards files and warnings: reads may be concurrent
	files    map[string]*backing // by path as the core names it
	warnings []string
}

// backing is a file that can fill in mapping contents, or why not.
type backing struct {
	f   *os.File
	why string // set when f is nil
}

// Open maps the core at path and parses its headers and notes.
func Open(path string, opt Options) (*Core, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 64 {
		return nil, fmt.Errorf("%s: %w: file too short", path, ErrNotCore)
	}
	data, err := syscall.Mmap(int(fh.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	c := &Core{path: path, data: data, opt: opt, files: map[string]*backing{}}
	if err := c.parse(); err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.info.Core = path
	return c, nil
}

// Parse reads a core from bytes in memory (for tests and fuzzing).
func Parse(data []byte, opt Options) (*Core, error) {
	c := &Core{data: data, opt: opt, files: map[string]*backing{}}
	if err := c.parse(); err != nil {
		return nil, err
	}
	return c, nil
}

// Close unmaps the core and closes the backing files.
func (c *Core) Close() error {
	for _, b := range c.files {
		if b.f != nil {
			b.f.Close()
		}
	}
	if c.path != "" && c.data != nil {
		err := syscall.Munmap(c.data)
		c.data = nil
		return err
	}
	return nil
}

func (c *Core) parse() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: malformed (%v)", ErrNotCore, p)
		}
	}()
	d := c.data
	if z := compression(d); z != "" {
		return fmt.Errorf("%w: the file is %s-compressed (as systemd-coredump stores cores); decompress it first, e.g. with 'coredumpctl dump PID -o core' or '%s -d'", ErrNotCore, z, z)
	}
	if len(d) < 64 || string(d[:4]) != "\x7fELF" {
		return fmt.Errorf("%w: no ELF header", ErrNotCore)
	}
	if d[4] != byte(elf.ELFCLASS64) || d[5] != byte(elf.ELFDATA2LSB) {
		return fmt.Errorf("%w: not a 64-bit little-endian ELF file", ErrNotCore)
	}
	typ := elf.Type(binary.LittleEndian.Uint16(d[16:]))
	mach := elf.Machine(binary.LittleEndian.Uint16(d[18:]))
	if typ != elf.ET_CORE {
		return fmt.Errorf("%w: ELF type is %v", ErrNotCore, typ)
	}
	if mach != elf.EM_X86_64 {
		return fmt.Errorf("%w: machine is %v", ErrNotCore, mach)
	}
	phoff := binary.LittleEndian.Uint64(d[32:])
	phentsize := uint64(binary.LittleEndian.Uint16(d[54:]))
	phnum := uint64(binary.LittleEndian.Uint16(d[56:]))
	if phentsize < 56 || phoff > uint64(len(d)) || phnum*phentsize > uint64(len(d))-phoff {
		return fmt.Errorf("%w: program headers are outside the file (truncated?)", ErrNotCore)
	}
	var notes [][]byte
	var loads []addrspace.Mapping
	truncated := 0
	for i := uint64(0); i < phnum; i++ {
		ph := d[phoff+i*phentsize:]
		ptype := elf.ProgType(binary.LittleEndian.Uint32(ph))
		flags := elf.ProgFlag(binary.LittleEndian.Uint32(ph[4:]))
		off := binary.LittleEndian.Uint64(ph[8:])
		vaddr := binary.LittleEndian.Uint64(ph[16:])
		filesz := binary.LittleEndian.Uint64(ph[32:])
		memsz := binary.LittleEndian.Uint64(ph[40:])
		switch ptype {
		case elf.PT_NOTE:
			if off > uint64(len(d)) || filesz > uint64(len(d))-off {
				c.warnf("the note segment is truncated")
				filesz = uint64(len(d)) - min(off, uint64(len(d)))
			}
			notes = append(notes, d[off:off+filesz])
		case elf.PT_LOAD:
			if memsz == 0 || vaddr+memsz < vaddr {
				continue
			}
			if off > uint64(len(d)) || filesz > uint64(len(d))-off {
				truncated++
				filesz = uint64(len(d)) - min(off, uint64(len(d)))
			}
			c.segs = append(c.segs, segment{addrspace.Addr(vaddr), addrspace.Addr(vaddr + memsz), off, filesz})
			var perm addrspace.Perm
			if flags&elf.PF_R != 0 {
				perm |= addrspace.Read
			}
			if flags&elf.PF_W != 0 {
				perm |= addrspace.Write
			}
			if flags&elf.PF_X != 0 {
				perm |= addrspace.Exec
			}
			loads = append(loads, addrspace.Mapping{Start: addrspace.Addr(vaddr), End: addrspace.Addr(vaddr + memsz), Perm: perm})
		}
	}
	if truncated > 0 {
		c.warnf("the core is truncated: %d memory segment(s) are incomplete", truncated)
	}
	if len(notes) == 0 {
		return fmt.Errorf("%w: no PT_NOTE segment (no threads, no file list)", ErrNotCore)
	}
	sort.Slice(c.segs, func(i, j int) bool { return c.segs[i].start < c.segs[j].start })
	var files []fileEntry
	for _, n := range notes {
		files = append(files, c.parseNotes(n)...)
	}
	if len(c.threads) == 0 {
		c.warnf("the core has no NT_PRSTATUS note: no thread registers or stacks")
	}
	c.maps = buildMappings(loads, files)
	for _, m := range c.maps {
		if m.File() && m.Offset == 0 && c.info.Executable == "" {
			c.info.Executable = m.Path
		}
	}
	return nil
}

func (c *Core) warnf(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// fileEntry is one NT_FILE record.
type fileEntry struct {
	start, end addrspace.Addr
	off        uint64 // bytes
	path       string
}

// Note types read here.
const (
	ntPrstatus = 1
	ntFpregset = 2
	ntPrpsinfo = 3
	ntAuxv     = 6
	ntXstate   = 0x202
	ntFile     = 0x46494c45
)

func (c *Core) parseNotes(b []byte) []fileEntry {
	var files []fileEntry
	for len(b) >= 12 {
		nsz := uint64(binary.LittleEndian.Uint32(b[0:]))
		dsz := uint64(binary.LittleEndian.Uint32(b[4:]))
		typ := binary.LittleEndian.Uint32(b[8:])
		nameEnd := 12 + (nsz+3)&^3
		descEnd := nameEnd + (dsz+3)&^3
		if nameEnd > uint64(len(b)) || nameEnd+dsz > uint64(len(b)) {
			c.warnf("a note is truncated")
			return files
		}
		name := string(bytes.TrimRight(b[12:12+nsz], "\x00"))
		desc := b[nameEnd : nameEnd+dsz]
		switch {
		case typ == ntPrstatus && name == "CORE" && len(desc) >= 112+27*8:
			t := addrspace.Thread{TID: int(binary.LittleEndian.Uint32(desc[32:]))}
			var w [addrspace.NumRegs]uint64
			for i := range w {
				w[i] = binary.LittleEndian.Uint64(desc[112+8*i:])
			}
			t.Regs = addrspace.RegsFromWords(w[:])
			if len(c.threads) == 0 {
				c.info.PID = t.TID
			}
			c.threads = append(c.threads, t)
		case (typ == ntXstate && name == "LINUX" || typ == ntFpregset && name == "CORE") && len(c.threads) > 0:
			t := &c.threads[len(c.threads)-1]
			if len(desc) > len(t.Vector) {
				t.Vector = append([]byte(nil), desc...)
			}
		case typ == ntPrpsinfo && name == "CORE" && len(desc) >= 136:
			args := strings.TrimRight(string(desc[56:136]), "\x00 ")
			c.info.Args = strings.Fields(args)
		case typ == ntFile && name == "CORE":
			files = append(files, parseNTFile(desc)...)
		}
		if descEnd > uint64(len(b)) {
			break
		}
		b = b[descEnd:]
	}
	return files
}

// parseNTFile decodes the NT_FILE note: count, page size, count triples of
// (start, end, page offset), then count NUL-terminated names.
func parseNTFile(d []byte) []fileEntry {
	if len(d) < 16 {
		return nil
	}
	n := binary.LittleEndian.Uint64(d[0:])
	page := binary.LittleEndian.Uint64(d[8:])
	if n > uint64(len(d))/24 {
		return nil
	}
	names := d[16+24*n:]
	out := make([]fileEntry, 0, n)
	for i := uint64(0); i < n; i++ {
		r := d[16+24*i:]
		e := fileEntry{start: addrspace.Addr(binary.LittleEndian.Uint64(r[0:])),
			end: addrspace.Addr(binary.LittleEndian.Uint64(r[8:])), off: binary.LittleEndian.Uint64(r[16:]) * page}
		j := bytes.IndexByte(names, 0)
		if j < 0 {
			break
		}
		e.path = string(names[:j])
		names = names[j+1:]
		if e.end > e.start {
			out = append(out, e)
		}
	}
	return out
}

// buildMappings merges the PT_LOADs (which have permissions and data) with
// the NT_FILE records (which have paths, and cover text that was not
// dumped).
func buildMappings(loads []addrspace.Mapping, files []fileEntry) []addrspace.Mapping {
	sort.Slice(files, func(i, j int) bool { return files[i].start < files[j].start })
	fileAt := func(a addrspace.Addr) *fileEntry {
		i := sort.Search(len(files), func(i int) bool { return files[i].end > a })
		if i < len(files) && files[i].start <= a {
			return &files[i]
		}
		return nil
	}
	var out []addrspace.Mapping
	for _, m := range loads {
		if f := fileAt(m.Start); f != nil {
			m.Path = f.path
			m.Offset = f.off + uint64(m.Start-f.start)
			if m.End > f.end {
				m.End = f.end // should not happen; keep the file part
			}
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
	// File ranges that no PT_LOAD covers were not dumped (code, rodata).
	for _, f := range files {
		a := f.start
		for a < f.end {
			i := sort.Search(len(out), func(i int) bool { return out[i].End > a })
			if i < len(out) && out[i].Start <= a {
				a = out[i].End
				continue
			}
			end := f.end
			if i < len(out) && out[i].Start < end {
				end = out[i].Start
			}
			out = append(out, addrspace.Mapping{Start: a, End: end, Perm: addrspace.Read | addrspace.Exec,
				Path: f.path, Offset: f.off + uint64(a-f.start), Missing: true})
			sort.Slice(out, func(i, j int) bool { return out[i].Start < out[j].Start })
			a = end
		}
	}
	return out
}

// Info implements addrspace.Space.
func (c *Core) Info() addrspace.Info { return c.info }

// Mappings implements addrspace.Space.
func (c *Core) Mappings() []addrspace.Mapping { return c.maps }

// Threads implements addrspace.Space.
func (c *Core) Threads() []addrspace.Thread { return c.threads }

// Warnings implements addrspace.Space.
func (c *Core) Warnings() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.warnings...)
}

// ReadAt implements addrspace.Space: dumped bytes come from the core,
// others from the mapped file when it matches.
func (c *Core) ReadAt(p []byte, a addrspace.Addr) (int, error) {
	n := 0
	for n < len(p) {
		cur := a + addrspace.Addr(n)
		k, err := c.readSome(p[n:], cur)
		n += k
		if err != nil {
			return n, err
		}
		if k == 0 {
			return n, fmt.Errorf("read %v: %w", cur, addrspace.ErrUnreadable)
		}
	}
	return n, nil
}

func (c *Core) readSome(p []byte, a addrspace.Addr) (int, error) {
	i := sort.Search(len(c.segs), func(i int) bool { return c.segs[i].end > a })
	if i < len(c.segs) && c.segs[i].start <= a {
		s := c.segs[i]
		rel := uint64(a - s.start)
		if rel < s.filesz {
			n := copy(p[:clamp(len(p), uint64(s.end-a))], c.data[s.off+rel:s.off+s.filesz])
			return n, nil
		}
	}
	m := addrspace.Find(c.maps, a)
	if m == nil {
		return 0, fmt.Errorf("read %v: %w (not mapped in the core)", a, addrspace.ErrUnreadable)
	}
	if m.File() {
		if f := c.backing(m.Path); f != nil {
			want := clamp(len(p), uint64(m.End-a))
			if i < len(c.segs) && c.segs[i].start <= a {
				want = clamp(want, uint64(c.segs[i].end-a))
			} else if i < len(c.segs) && c.segs[i].start < a+addrspace.Addr(want) {
				want = clamp(want, uint64(c.segs[i].start-a))
			}
			k, err := f.ReadAt(p[:want], int64(m.Offset+uint64(a-m.Start)))
			if k > 0 {
				return k, nil
			}
			return 0, fmt.Errorf("read %v from %s: %w (%v)", a, m.Path, addrspace.ErrUnreadable, err)
		}
	}
	return 0, fmt.Errorf("read %v: %w (not dumped in the core)", a, addrspace.ErrUnreadable)
}

// backing returns the file that backs path when it matches the core.
func (c *Core) backing(path string) *os.File {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.files[path]
	if !ok {
		b = c.openBacking(path)
		c.files[path] = b
		if b.why != "" {
			c.warnings = append(c.warnings, fmt.Sprintf("%s: %s", path, b.why))
		}
	}
	return b.f
}

func (c *Core) openBacking(path string) *backing {
	f, err := c.OpenFile(path)
	if err != nil {
		return &backing{why: "not available (" + err.Error() + "); its code and read-only data are missing"}
	}
	// Check the build-id against the first page that the core holds.
	var start addrspace.Addr
	for _, m := range c.maps {
		if m.Path == path && m.Offset == 0 {
			start = m.Start
			break
		}
	}
	if ef, err := elfsym.Open(f); err == nil && start != 0 {
		hdr := make([]byte, 4096)
		if _, err := c.ReadAtCoreOnly(hdr, start); err == nil {
			mem := memBuildID(hdr)
			if disk := ef.BuildID(); mem != nil && !bytes.Equal(mem, disk) {
				f.Close()
				return &backing{why: fmt.Sprintf("the file on this machine is not the one in the core (build-id %x, core has %x); not using it", disk, mem)}
			}
		}
	}
	return &backing{f: f}
}

// ReadAtCoreOnly reads bytes that the core itself holds, never from files.
func (c *Core) ReadAtCoreOnly(p []byte, a addrspace.Addr) (int, error) {
	i := sort.Search(len(c.segs), func(i int) bool { return c.segs[i].end > a })
	if i < len(c.segs) && c.segs[i].start <= a {
		s := c.segs[i]
		rel := uint64(a - s.start)
		if rel+uint64(len(p)) <= s.filesz {
			return copy(p, c.data[s.off+rel:]), nil
		}
	}
	return 0, fmt.Errorf("read %v: %w", a, addrspace.ErrUnreadable)
}

// memBuildID parses the build-id from an ELF header page.
func memBuildID(hdr []byte) []byte {
	if len(hdr) < 64 || string(hdr[:4]) != "\x7fELF" {
		return nil
	}
	phoff := binary.LittleEndian.Uint64(hdr[0x20:])
	phnum := uint64(binary.LittleEndian.Uint16(hdr[0x38:]))
	for i := uint64(0); i < phnum && phoff+(i+1)*56 <= uint64(len(hdr)); i++ {
		ph := hdr[phoff+i*56:]
		if elf.ProgType(binary.LittleEndian.Uint32(ph)) != elf.PT_NOTE {
			continue
		}
		off := binary.LittleEndian.Uint64(ph[8:])
		sz := binary.LittleEndian.Uint64(ph[32:])
		if off < uint64(len(hdr)) && sz <= uint64(len(hdr))-off {
			if id := elfsym.ParseBuildID(hdr[off : off+sz]); id != nil {
				return id
			}
		}
	}
	return nil
}

// OpenFile implements addrspace.Space: the sysroot, then the search path
// by base name, then the path itself when no sysroot is set.
func (c *Core) OpenFile(path string) (*os.File, error) {
	var tried []string
	if c.opt.Sysroot != "" {
		p := filepath.Join(c.opt.Sysroot, path)
		if f, err := os.Open(p); err == nil {
			return f, nil
		}
		tried = append(tried, p)
	}
	for _, d := range c.opt.SolibSearchPath {
		p := filepath.Join(d, filepath.Base(path))
		if f, err := os.Open(p); err == nil {
			return f, nil
		}
		tried = append(tried, p)
	}
	if c.opt.Sysroot == "" {
		if f, err := os.Open(path); err == nil {
			return f, nil
		}
		tried = append(tried, path)
	}
	return nil, fmt.Errorf("no file at %s", strings.Join(tried, ", "))
}

// clamp returns min(n, limit) without overflowing int.
func clamp(n int, limit uint64) int {
	if limit < uint64(n) {
		return int(limit)
	}
	return n
}

// compression names the compressor whose magic number starts d, or "".
func compression(d []byte) string {
	for _, z := range []struct{ magic, name string }{
		{"\x28\xb5\x2f\xfd", "zstd"}, {"\xfd7zXZ\x00", "xz"}, {"\x04\x22\x4d\x18", "lz4"}, {"\x1f\x8b", "gzip"},
	} {
		if len(d) >= len(z.magic) && string(d[:len(z.magic)]) == z.magic {
			return z.name
		}
	}
	return ""
}
