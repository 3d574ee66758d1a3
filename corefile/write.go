package corefile

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/heapsift/heapsift/addrspace"
)

// Write writes s as an ELF core file that gdb and heapsift can read: one
// PT_LOAD per readable mapping (with its contents; unreadable pages are
// written as zeros), and notes for the process (NT_PRPSINFO), every thread
// (NT_PRSTATUS, NT_X86_XSTATE or NT_FPREGSET) and the mapped files
// (NT_FILE). It returns warnings for memory that could not be read.
//
// auxv is the process's auxiliary vector (/proc/PID/auxv), which debuggers
// need to find the shared libraries; nil leaves it out.
func Write(w io.Writer, s addrspace.Space, auxv []byte) ([]string, error) {
	var maps []addrspace.Mapping
	for _, m := range s.Mappings() {
		if m.Perm&addrspace.Read != 0 && !m.Missing && !strings.HasPrefix(m.Path, "[vvar") && m.Path != "[vsyscall]" {
			maps = append(maps, m)
		}
	}
	notes := buildNotes(s, auxv)
	const ehsize, phsize = 64, 56
	phnum := 1 + len(maps)
	noteOff := uint64(ehsize + phsize*phnum)
	dataOff := (noteOff + uint64(len(notes)) + 4095) &^ 4095

	bw := bufio.NewWriterSize(w, 1<<20)
	le := binary.LittleEndian
	eh := make([]byte, ehsize)
	copy(eh, "\x7fELF\x02\x01\x01")
	le.PutUint16(eh[16:], 4)  // ET_CORE
	le.PutUint16(eh[18:], 62) // EM_X86_64
	le.PutUint32(eh[20:], 1)
	le.PutUint64(eh[32:], ehsize)
	le.PutUint16(eh[52:], ehsize)
	le.PutUint16(eh[54:], phsize)
	le.PutUint16(eh[56:], uint16(phnum))
	bw.Write(eh)
	ph := func(typ, flags uint32, off, vaddr, filesz, memsz, align uint64) {
		b := make([]byte, phsize)
		le.PutUint32(b[0:], typ)
		le.PutUint32(b[4:], flags)
		le.PutUint64(b[8:], off)
		le.PutUint64(b[16:], vaddr)
		le.PutUint64(b[32:], filesz)
		le.PutUint64(b[40:], memsz)
		le.PutUint64(b[48:], align)
		bw.Write(b)
	}
	ph(4, 4, noteOff, 0, uint64(len(notes)), 0, 1) // PT_NOTE
	off := dataOff
	for _, m := range maps {
		var fl uint32
		if m.Perm&addrspace.Read != 0 {
			fl |= 4
		}
		if m.Perm&addrspace.Write != 0 {
			fl |= 2
		}
		if m.Perm&addrspace.Exec != 0 {
			fl |= 1
		}
		ph(1, fl, off, uint64(m.Start), m.Size(), m.Size(), 4096)
		off += m.Size()
	}
	bw.Write(notes)
	bw.Write(make([]byte, dataOff-noteOff-uint64(len(notes))))
	var warns []string
	buf := make([]byte, 1<<20)
	for _, m := range maps {
		for a := m.Start; a < m.End; {
			n := min(uint64(m.End-a), uint64(len(buf)))
			b := buf[:n]
			if _, err := s.ReadAt(b, a); err != nil {
				for i := range b {
					b[i] = 0
				}
				// Salvage what can be read, page by page.
				bad := 0
				for p := uint64(0); p < n; p += 4096 {
					if _, err := s.ReadAt(b[p:min(p+4096, n)], a+addrspace.Addr(p)); err != nil {
						bad++
					}
				}
				if bad > 0 {
					warns = append(warns, fmt.Sprintf("%d unreadable page(s) in %s written as zeros", bad, m.String()))
				}
			}
			if _, err := bw.Write(b); err != nil {
				return warns, err
			}
			a += addrspace.Addr(n)
		}
	}
	return warns, bw.Flush()
}

// buildNotes encodes the PT_NOTE contents.
func buildNotes(s addrspace.Space, auxv []byte) []byte {
	le := binary.LittleEndian
	var out []byte
	note := func(name string, typ uint32, desc []byte) {
		h := make([]byte, 12)
		le.PutUint32(h[0:], uint32(len(name)+1))
		le.PutUint32(h[4:], uint32(len(desc)))
		le.PutUint32(h[8:], typ)
		out = append(out, h...)
		nm := make([]byte, (len(name)+1+3)&^3)
		copy(nm, name)
		out = append(out, nm...)
		out = append(out, desc...)
		out = append(out, make([]byte, (4-len(desc)%4)%4)...)
	}
	info := s.Info()
	ps := make([]byte, 136)
	ps[1] = 'R'
	le.PutUint32(ps[24:], uint32(info.PID))
	copy(ps[40:55], filepath.Base(info.Executable))
	args := ""
	for i, a := range info.Args {
		if i > 0 {
			args += " "
		}
		args += a
	}
	copy(ps[56:135], args)
	note("CORE", ntPrpsinfo, ps)
	for _, t := range s.Threads() {
		st := make([]byte, 336)
		le.PutUint32(st[32:], uint32(t.TID))
		le.PutUint32(st[36:], uint32(info.PID))
		for i, w := range t.Regs.Words() {
			le.PutUint64(st[112+8*i:], w)
		}
		note("CORE", ntPrstatus, st)
		if len(t.Vector) >= 512 {
			note("CORE", ntFpregset, t.Vector[:512])
		}
		if len(t.Vector) > 512 {
			note("LINUX", ntXstate, t.Vector)
		}
	}
	if len(auxv) > 0 {
		note("CORE", ntAuxv, auxv)
	}
	var files []addrspace.Mapping
	for _, m := range s.Mappings() {
		if m.File() {
			files = append(files, m)
		}
	}
	fd := make([]byte, 16+24*len(files))
	le.PutUint64(fd[0:], uint64(len(files)))
	le.PutUint64(fd[8:], 4096)
	for i, m := range files {
		le.PutUint64(fd[16+24*i:], uint64(m.Start))
		le.PutUint64(fd[24+24*i:], uint64(m.End))
		le.PutUint64(fd[32+24*i:], m.Offset/4096)
	}
	for _, m := range files {
		fd = append(fd, m.Path...)
		fd = append(fd, 0)
	}
	note("CORE", ntFile, fd)
	return out
}
