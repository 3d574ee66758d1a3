package stats

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"github.com/heapsift/heapsift/addrspace"
)

// Proc is the residency of a live process's memory, from
// /proc/PID/smaps (per mapping) and /proc/PID/pagemap (per page, for the
// parts of mappings). It implements Residency.
type Proc struct {
	vmas    map[addrspace.Addr]VMAUsage
	pagemap *os.File // nil when it cannot be read
	// zeroPFN is the page frame of the kernel's shared zero page, which
	// smaps does not count as resident, or 0 when PFNs are hidden (no
	// CAP_SYS_ADMIN).
	zeroPFN uint64
}

// VMAUsage is the residency of one mapping, from smaps.
type VMAUsage struct {
	End       addrspace.Addr
	Rss, Swap uint64 // bytes
}

// OpenProc reads /proc/PID/smaps and opens /proc/PID/pagemap. Call it
// while the process is stopped, and Close the result.
func OpenProc(pid int) (*Proc, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	f, err := os.Open(dir + "/smaps")
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	defer f.Close()
	vmas, err := ParseSmaps(f)
	if err != nil {
		return nil, fmt.Errorf("stats: %s/smaps: %w", dir, err)
	}
	p := &Proc{vmas: vmas}
	if pm, err := os.Open(dir + "/pagemap"); err == nil {
		p.pagemap = pm
		p.zeroPFN = zeroPagePFN()
	}
	return p, nil
}

// zeroPagePFN finds the zero page's frame by reading a fresh anonymous
// page of our own and looking it up in /proc/self/pagemap. Reading another
// process's memory (as the heap walk does) maps the zero page into its
// untouched pages, which pagemap reports present but smaps, rightly, not.
func zeroPagePFN() uint64 {
	b, err := syscall.Mmap(-1, 0, PageSize, syscall.PROT_READ, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return 0
	}
	defer syscall.Munmap(b)
	if b[0] != 0 { // faults the zero page in
		return 0
	}
	f, err := os.Open("/proc/self/pagemap")
	if err != nil {
		return 0
	}
	defer f.Close()
	var e [8]byte
	if _, err := f.ReadAt(e[:], int64(8*(uint64(uintptr(unsafe.Pointer(&b[0])))/PageSize))); err != nil {
		return 0
	}
	v := binary.LittleEndian.Uint64(e[:])
	if v&pagePresent == 0 {
		return 0
	}
	return v & pfnMask
}

// Close closes the pagemap file.
func (p *Proc) Close() error {
	if p.pagemap == nil {
		return nil
	}
	err := p.pagemap.Close()
	p.pagemap = nil
	return err
}

// Mapping implements Residency from smaps.
func (p *Proc) Mapping(m *addrspace.Mapping) (rss, swap uint64, ok bool) {
	u, ok := p.vmas[m.Start]
	if !ok || u.End != m.End {
		return 0, 0, false
	}
	return u.Rss, u.Swap, true
}

// Page flags of /proc/PID/pagemap entries.
const (
	pagePresent = 1 << 63
	pageSwapped = 1 << 62
	pfnMask     = 1<<55 - 1
)

// Range implements Residency from pagemap.
func (p *Proc) Range(start, end addrspace.Addr) (rss, swap uint64, ok bool) {
	if p.pagemap == nil || end <= start {
		return 0, 0, false
	}
	first, n := uint64(start)/PageSize, (uint64(end)+PageSize-1)/PageSize-uint64(start)/PageSize
	buf := make([]byte, 8*min(n, 1<<16))
	for done := uint64(0); done < n; {
		chunk := min(n-done, uint64(len(buf)/8))
		b := buf[:8*chunk]
		if _, err := p.pagemap.ReadAt(b, int64(8*(first+done))); err != nil {
			return 0, 0, false
		}
		for i := 0; i < len(b); i += 8 {
			e := binary.LittleEndian.Uint64(b[i:])
			switch {
			case e&pagePresent != 0 && (p.zeroPFN == 0 || e&pfnMask != p.zeroPFN):
				rss += PageSize
			case e&pageSwapped != 0:
				swap += PageSize
			}
		}
		done += chunk
	}
	return rss, swap, true
}

// ParseSmaps parses the format of /proc/PID/smaps: each mapping's maps
// line, then "Key:   N kB" lines. It keeps Rss and Swap.
func ParseSmaps(r io.Reader) (map[addrspace.Addr]VMAUsage, error) {
	out := map[addrspace.Addr]VMAUsage{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var cur addrspace.Addr
	have := false
	for sc.Scan() {
		line := sc.Text()
		key, rest, isField := strings.Cut(line, ":")
		if isField && !strings.Contains(key, " ") && !strings.Contains(key, "-") {
			if !have {
				continue
			}
			u := out[cur]
			switch key {
			case "Rss":
				u.Rss = kB(rest)
			case "Swap":
				u.Swap = kB(rest)
			}
			out[cur] = u
			continue
		}
		rng, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(rng, "-")
		if !ok {
			return nil, fmt.Errorf("unexpected line %q", line)
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("line %q: %w", line, err)
		}
		cur, have = addrspace.Addr(s), true
		out[cur] = VMAUsage{End: addrspace.Addr(e)}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// kB parses "   1234 kB" into bytes (0 when malformed).
func kB(s string) uint64 {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0
	}
	n, err := strconv.ParseUint(f[0], 10, 64)
	if err != nil {
		return 0
	}
	return n << 10
}

// ReadFDs lists the open file descriptors of a live process by kind.
func ReadFDs(pid int) (*FDs, error) {
	dir := "/proc/" + strconv.Itoa(pid) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("stats: %w", err)
	}
	fds := &FDs{Kinds: map[string]int{}}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		target, err := os.Readlink(p)
		if err != nil {
			continue // closed meanwhile
		}
		isDir := false
		if st, err := os.Stat(p); err == nil {
			isDir = st.IsDir()
		}
		fds.Total++
		fds.Kinds[FDKind(target, isDir)]++
	}
	return fds, nil
}

// FDKind names the kind of a file descriptor from its /proc/PID/fd link.
func FDKind(target string, isDir bool) string {
	switch {
	case strings.HasPrefix(target, "socket:"):
		return "socket"
	case strings.HasPrefix(target, "pipe:"):
		return "pipe"
	case strings.HasPrefix(target, "anon_inode:"):
		name := strings.TrimPrefix(target, "anon_inode:")
		return strings.Trim(name, "[]")
	case strings.HasPrefix(target, "/memfd:"):
		return "memfd"
	case strings.HasPrefix(target, "/dev/shm/"):
		return "POSIX shm"
	case isDir:
		return "directory"
	case strings.HasPrefix(target, "/dev/"):
		return "device"
	case strings.HasSuffix(target, " (deleted)"):
		return "deleted file"
	case strings.HasPrefix(target, "/"):
		return "file"
	}
	return "other"
}
