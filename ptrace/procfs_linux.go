package ptrace

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/heapsift/heapsift/addrspace"
)

// Task flags from /proc/PID/stat (PF_* in the kernel's linux/sched.h).
const (
	pfExiting  = 0x00000004 // the task is past its exit stop
	pfSignaled = 0x00000400 // the task is dying of a signal
	pfKthread  = 0x00200000 // a kernel thread
)

// deletedSuffix is how /proc names a file that was unlinked.
const deletedSuffix = " (deleted)"

// procDir is /proc/PID.
func procDir(pid int) string { return "/proc/" + strconv.Itoa(pid) }

// taskDir is /proc/PID/task/TID. Per-thread paths keep working when the
// main thread has exited (its /proc/PID/maps, mem and exe are then empty).
func taskDir(pid, tid int) string { return fmt.Sprintf("/proc/%d/task/%d", pid, tid) }

// listTasks returns the thread ids of process pid.
func listTasks(pid int) ([]int, error) {
	f, err := os.Open(procDir(pid) + "/task")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(names))
	for _, n := range names {
		if tid, err := strconv.Atoi(n); err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// taskStat is the part of /proc/.../stat that we use.
type taskStat struct {
	state byte   // R, S, D, T (stopped), t (traced), Z, X...
	flags uint64 // PF_*
}

// readStat parses a /proc/PID/stat or /proc/PID/task/TID/stat file.
func readStat(path string) (taskStat, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return taskStat{}, err
	}
	// The command name may contain anything, including ')': the fields
	// start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return taskStat{}, fmt.Errorf("%s: malformed", path)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), f[6] is field 9 (flags).
	if len(f) < 7 || len(f[0]) != 1 {
		return taskStat{}, fmt.Errorf("%s: malformed", path)
	}
	flags, err := strconv.ParseUint(f[6], 10, 64)
	if err != nil {
		return taskStat{}, fmt.Errorf("%s: malformed flags: %v", path, err)
	}
	return taskStat{state: f[0][0], flags: flags}, nil
}

// readStatus returns the "Key:\tvalue" lines of a /proc status file.
func readStatus(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, nil
}

// readMaps reads and parses a /proc/.../maps file.
func readMaps(path string) ([]addrspace.Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	maps, err := parseMaps(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return maps, nil
}

// parseMaps parses the format of /proc/PID/maps:
//
//	7f12a000-7f12c000 rw-p 0001c000 08:01 131090    /usr/lib/libc.so.6
//
// The result is sorted by address.
func parseMaps(r io.Reader) ([]addrspace.Mapping, error) {
	var maps []addrspace.Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		m, err := parseMapsLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		maps = append(maps, m)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(maps, func(i, j int) bool { return maps[i].Start < maps[j].Start })
	return maps, nil
}

func parseMapsLine(s string) (addrspace.Mapping, error) {
	var m addrspace.Mapping
	var field [5]string
	rest := s
	for i := range field {
		rest = strings.TrimLeft(rest, " ")
		var ok bool
		field[i], rest, ok = strings.Cut(rest, " ")
		if !ok && i < len(field)-1 {
			return m, fmt.Errorf("malformed mapping %q", s)
		}
	}
	lo, hi, ok := strings.Cut(field[0], "-")
	if !ok {
		return m, fmt.Errorf("malformed range in %q", s)
	}
	start, err1 := strconv.ParseUint(lo, 16, 64)
	end, err2 := strconv.ParseUint(hi, 16, 64)
	off, err3 := strconv.ParseUint(field[2], 16, 64)
	inode, err4 := strconv.ParseUint(field[4], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || end < start || len(field[1]) != 4 {
		return m, fmt.Errorf("malformed mapping %q", s)
	}
	m.Start, m.End = addrspace.Addr(start), addrspace.Addr(end)
	m.Perm = addrspace.ParsePerm(field[1])
	m.Offset = off
	m.Dev = field[3]
	m.Inode = inode
	m.Path = strings.TrimLeft(rest, " ")
	if strings.HasSuffix(m.Path, deletedSuffix) {
		m.Path = strings.TrimSuffix(m.Path, deletedSuffix)
		m.Deleted = true
	}
	return m, nil
}

// readSmaps reads a /proc/.../smaps file and calls field for every
// "Key: value" line, with the mapping it belongs to.
func readSmaps(path string, field func(m *addrspace.Mapping, key, value string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return parseSmaps(f, field)
}

// parseSmaps is readSmaps on an open file.
func parseSmaps(r io.Reader, field func(m *addrspace.Mapping, key, value string)) error {
	var cur *addrspace.Mapping
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		key, value, _ := strings.Cut(line, " ")
		if strings.HasSuffix(key, ":") {
			if cur != nil {
				field(cur, key, strings.TrimSpace(value))
			}
			continue
		}
		m, err := parseMapsLine(line)
		if err != nil {
			return err
		}
		cur = &m
	}
	return sc.Err()
}

// readCmdline splits a /proc/.../cmdline file into arguments.
func readCmdline(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}
