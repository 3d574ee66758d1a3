package ptrace

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
)

// binDir holds the C test programs, built once per test run.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "heapsift-ptrace-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type build struct {
	once sync.Once
	path string
	err  error
}

var builds sync.Map // program name → *build

// binary builds testdata/name.c (once) and returns the executable.
func binary(t *testing.T, name string) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not found")
	}
	v, _ := builds.LoadOrStore(name, &build{})
	b := v.(*build)
	b.once.Do(func() {
		b.path = filepath.Join(binDir, name)
		cmd := exec.Command("gcc", "-O1", "-g", "-pthread", "-Wall", "-o", b.path, filepath.Join("testdata", name+".c"))
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("build %s: %v", name, b.err)
	}
	return b.path
}

// A target is a running testdata/target process.
type target struct {
	path  string
	pid   int
	stdin io.WriteCloser
	lines chan string
	vals  map[string]uint64 // from its "ready" line
}

// startTarget starts testdata/target with args and waits until it is ready.
// It is killed when the test ends.
func startTarget(t *testing.T, args ...string) *target {
	t.Helper()
	return startFixture(t, "target", args...)
}

// startFixture starts testdata/name with args, waits for its "ready"
// line and returns it. It is killed when the test ends.
func startFixture(t *testing.T, name string, args ...string) *target {
	t.Helper()
	path := binary(t, name)
	cmd := exec.Command(path, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	tg := &target{path: path, pid: cmd.Process.Pid, stdin: stdin, lines: make(chan string, 16), vals: map[string]uint64{}}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			tg.lines <- sc.Text()
		}
		close(tg.lines)
	}()
	line := tg.line(t)
	if !strings.HasPrefix(line, "ready ") {
		t.Fatalf("%s: unexpected first line %q", name, line)
	}
	for _, kv := range strings.Fields(line)[1:] {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			t.Fatalf("%s: bad value in %q", name, kv)
		}
		tg.vals[k] = n
	}
	return tg
}

// line returns the target's next line of output.
func (tg *target) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-tg.lines:
		if !ok {
			t.Fatal("target: output ended")
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatal("target: no output")
	}
	return ""
}

func (tg *target) addr(key string) addrspace.Addr { return addrspace.Addr(tg.vals[key]) }

// attach attaches to pid, skipping the test if ptrace is not permitted,
// and detaches when the test ends.
func attach(t *testing.T, pid int) *Process {
	t.Helper()
	start := time.Now()
	p, err := Attach(pid)
	if errors.Is(err, ErrPermission) {
		t.Skipf("ptrace not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("attached to %d (%d threads) in %v", pid, len(p.Threads()), time.Since(start))
	t.Cleanup(func() { p.Detach() })
	return p
}

// taskStates returns "state/tracer" for every thread of pid, where
// tracer is "us" for a thread of this process, else TracerPid.
func taskStates(t *testing.T, pid int) map[int]string {
	t.Helper()
	m := map[int]string{}
	tids, err := listTasks(pid)
	if errors.Is(err, os.ErrNotExist) {
		return m
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, tid := range tids {
		st, err := readStat(taskDir(pid, tid) + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		tracer := strconv.Itoa(tracerOf(pid, tid))
		if ownThread(tracerOf(pid, tid)) {
			tracer = "us"
		}
		m[tid] = fmt.Sprintf("%c/%s", st.state, tracer)
	}
	return m
}

// waitFor polls cond until it holds or a few seconds pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func readWord(t *testing.T, p *Process, a addrspace.Addr) uint64 {
	t.Helper()
	v, err := addrspace.ReadUint64(p, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// processState returns the state letter of process pid, 0 if it is gone.
func processState(pid int) byte {
	st, err := readStat(procDir(pid) + "/stat")
	if err != nil {
		return 0
	}
	return st.state
}

// alive reports whether pid exists (zombies included).
func alive(pid int) bool { return unix.Kill(pid, 0) == nil }
