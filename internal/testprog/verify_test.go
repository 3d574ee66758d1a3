package testprog

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// This file checks a paused fixture's claims against its live memory, read
// through /proc/PID/mem: a conservative scan for every word that points
// into a chunk the truth calls leaked or possible. It keeps the fixtures
// honest (no stale copy of a pointer in a dead frame, a libc buffer or a
// free chunk the truth does not know about) without a heap walker.
// Registers are not read: the fixtures keep in registers only pointers to
// chunks they call reachable.

// region is an address range [lo, hi) with what it is.
type region struct {
	lo, hi uint64
	kind   byte // 'f' free, 'l' leaked, 'p' possible, 'x' dead stack
	addr   uint64
}

// target is a leaked or possible chunk and the pointers found into it.
type target struct {
	addr, end uint64 // [addr, end): the requested bytes
	nextHdr   uint64 // the next chunk's header, which malloc's own lists point to
	kind      byte   // 'd' definite, 'i' indirect, 'c' cycle member, 'p' possible
	fromRoot  int    // pointers from memory outside every recorded chunk
	rootStart int    // ... of them, to the chunk's start
	fromSelf  int
	fromLeak  int // from other leaked chunks
	leakStart int // ... of them, to the chunk's start
	fromPoss  int // from possible chunks
}

type mapping struct {
	lo, hi uint64
	perms  string
	name   string
}

// verifyMemory returns the claims of truth that process pid's memory
// contradicts.
func verifyMemory(pid int, truth *Truth) ([]string, error) {
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	maps, err := readMaps(pid)
	if err != nil {
		return nil, err
	}
	word := func(a uint64) uint64 {
		var b [8]byte
		if _, err := mem.ReadAt(b[:], int64(a)); err != nil {
			return 0
		}
		return binary.LittleEndian.Uint64(b[:])
	}
	// The chunk's extent from its size field: heap chunks own the next
	// chunk's prev_size word too; mmapped chunks end at their mapping.
	extent := func(a uint64) (end, nextHdr uint64) {
		size := word(a - 8)
		cs := size &^ 7
		if size&2 != 0 {
			return a - 16 + cs, 0
		}
		return a - 16 + cs + 8, a - 16 + cs
	}

	var regs []region
	for a := range truth.Freed {
		end, _ := extent(a)
		regs = append(regs, region{a - 16, end, 'f', a})
	}
	dead, err := deadStacks(pid)
	if err != nil {
		return nil, err
	}
	regs = append(regs, dead...)
	cyc := truth.CycleMembers()
	var targets []*target
	for a := range truth.Leaked {
		end, next := extent(a)
		regs = append(regs, region{a, end, 'l', a})
		kind := byte('i')
		switch {
		case truth.Definite.Has(a):
			kind = 'd'
		case cyc.Has(a):
			kind = 'c'
		}
		targets = append(targets, &target{addr: a, end: a + max(truth.Sizes[a], 1), nextHdr: next, kind: kind})
	}
	for a := range truth.Possible {
		end, next := extent(a)
		regs = append(regs, region{a, end, 'p', a})
		targets = append(targets, &target{addr: a, end: a + max(truth.Sizes[a], 1), nextHdr: next, kind: 'p'})
	}
	if len(targets) == 0 {
		return nil, nil
	}
	sort.Slice(regs, func(i, j int) bool { return regs[i].lo < regs[j].lo })
	sort.Slice(targets, func(i, j int) bool { return targets[i].addr < targets[j].addr })
	lo, hi := targets[0].addr, targets[len(targets)-1].end

	source := func(x uint64) *region {
		i := sort.Search(len(regs), func(i int) bool { return regs[i].lo > x }) - 1
		// Free regions can nest (a stale header inside a merged free
		// chunk), so look back a little.
		for k := i; k >= 0 && k > i-4; k-- {
			if x >= regs[k].lo && x < regs[k].hi {
				return &regs[k]
			}
		}
		return nil
	}
	hit := func(at, w uint64) {
		i := sort.Search(len(targets), func(i int) bool { return targets[i].end > w })
		if i == len(targets) || w < targets[i].addr {
			return
		}
		t := targets[i]
		if w == t.nextHdr {
			return
		}
		src := source(at)
		switch {
		case src == nil:
			t.fromRoot++
			if w == t.addr {
				t.rootStart++
			}
		case src.kind == 'f', src.kind == 'x':
		case src.addr == t.addr:
			t.fromSelf++
		case src.kind == 'l':
			t.fromLeak++
			if w == t.addr {
				t.leakStart++
			}
		case src.kind == 'p':
			t.fromPoss++
		}
	}

	buf := make([]byte, 1<<20)
	for _, m := range maps {
		if !strings.HasPrefix(m.perms, "r") || m.name == "[vvar]" || m.name == "[vsyscall]" {
			continue
		}
		for a := m.lo; a < m.hi; a += uint64(len(buf)) {
			n := min(uint64(len(buf)), m.hi-a)
			got, _ := mem.ReadAt(buf[:n], int64(a))
			for off := 0; off+8 <= got; off += 8 {
				w := binary.LittleEndian.Uint64(buf[off:])
				if w >= lo && w < hi {
					hit(a+uint64(off), w)
				}
			}
		}
	}

	var fails []string
	for _, t := range targets {
		var bad string
		switch t.kind {
		case 'd':
			// Another leaked chunk may point inside it (a child's
			// back-pointer to a list head embedded in its parent),
			// never at its start.
			if t.fromRoot+t.leakStart+t.fromPoss > 0 {
				bad = "definite, but pointed to"
			}
		case 'i', 'c':
			if t.fromRoot+t.fromPoss > 0 {
				bad = "leaked, but pointed to from outside the leaked chunks"
			} else if t.kind == 'i' && t.fromLeak == 0 {
				bad = "indirect, but no leaked chunk points to it"
			}
		case 'p':
			if t.rootStart > 0 {
				bad = "possible, but a root points to its start"
			} else if t.fromRoot+t.fromPoss == 0 {
				bad = "possible, but nothing outside the leaked chunks points into it"
			}
		}
		if bad != "" {
			fails = append(fails, fmt.Sprintf("%#x: %s (from roots %d (to its start %d), leaked chunks %d (%d), possible chunks %d, itself %d)",
				t.addr, bad, t.fromRoot, t.rootStart, t.fromLeak, t.leakStart, t.fromPoss, t.fromSelf))
		}
	}
	return fails, nil
}

// deadStacks returns, for every thread of pid parked in a system call,
// the 256 KiB below its stack pointer's red zone: stale frames, which no
// conservative scan reads (heapsift reads none of a thread's stack below
// that point; 256 KiB stays inside the thread's own stack block).
func deadStacks(pid int) ([]region, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	var out []region
	for _, task := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue // running: no stack pointer
		}
		sp, err := strconv.ParseUint(f[len(f)-2], 0, 64)
		if err != nil || sp < 128+256<<10 {
			continue
		}
		out = append(out, region{sp - 128 - 256<<10, sp - 128, 'x', 0})
	}
	return out, nil
}

// readMaps parses /proc/PID/maps.
func readMaps(pid int) ([]mapping, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		los, his, ok := strings.Cut(fields[0], "-")
		lo, err1 := strconv.ParseUint(los, 16, 64)
		hi, err2 := strconv.ParseUint(his, 16, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("maps: bad line %q", sc.Text())
		}
		m := mapping{lo: lo, hi: hi, perms: fields[1]}
		if len(fields) >= 6 {
			m.name = strings.Join(fields[5:], " ")
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
