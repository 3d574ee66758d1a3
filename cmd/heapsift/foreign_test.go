package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/internal/glibctest"
	"github.com/heapsift/heapsift/internal/testprog"
)

// refused runs heapsift on a live process (leaks PID) and at its exit
// (run), and checks that both fail plainly: exit 1, no report on stdout,
// and a message on stderr that contains every one of want.
func refused(t *testing.T, pid int, runArgv []string, env []string, want ...string) {
	t.Helper()
	check := func(mode string, code int, out, errb *bytes.Buffer) {
		t.Helper()
		if code != exitFailure {
			t.Errorf("%s: exit %d, want %d; stderr: %s", mode, code, exitFailure, errb)
		}
		if out.Len() != 0 {
			t.Errorf("%s: a report on stdout: %.200s", mode, out)
		}
		for _, w := range want {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%s: stderr %q lacks %q", mode, errb, w)
			}
		}
	}
	if pid > 0 {
		e, out, errb := testEnv(t, env...)
		check("live", traced(e, "leaks", "--json", strconv.Itoa(pid)), out, errb)
		assertUntouched(t, pid)
	}
	if runArgv != nil {
		e, out, errb := testEnv(t, env...)
		check("exit", traced(e, append([]string{"run", "--json", "--"}, runArgv...)...), out, errb)
	}
}

// TestJemallocPreloaded: a glibc program whose malloc is an LD_PRELOADed
// jemalloc (Debian's libjemalloc2) is refused with a message that names
// jemalloc, live and at exit: never an empty report.
func TestJemallocPreloaded(t *testing.T) {
	requirePtrace(t)
	if glibctest.HostMinor() < 36 {
		t.Skipf("bookworm's jemalloc needs glibc 2.36 or newer, not 2.%d", glibctest.HostMinor())
	}
	so := filepath.Join(glibctest.Fetch(t, glibctest.Jemalloc), "usr", "lib", "x86_64-linux-gnu", "libjemalloc.so.2")
	preload := "LD_PRELOAD=" + so
	bin := testprog.Build(t, "plain")
	pid, _ := testprog.StartPaused(t, bin, preload)
	maps, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if !bytes.Contains(maps, []byte("libjemalloc.so.2")) {
		t.Fatalf("jemalloc is not loaded in the fixture")
	}
	refused(t, pid, []string{bin, filepath.Join(t.TempDir(), "truth.json")}, []string{preload, "HS_MODE=exit"},
		"allocates with jemalloc", "glibc malloc only")
}

// interposer is a malloc that no allocator's name gives away: a bump
// allocator over mmap, preloaded.
const interposer = `#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
static char *base, *next, *end;
static void *grab(size_t n)
{
	char *p;
	n = (n + 15) & ~(size_t)15;
	if (!base) {
		base = next = mmap(0, 1 << 26, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		end = base + (1 << 26);
	}
	if (next + n + 16 > end)
		return 0;
	*(size_t *)next = n;
	p = next + 16;
	next += n + 16;
	return p;
}
void *malloc(size_t n) { return grab(n); }
void free(void *p) { (void)p; }
void *calloc(size_t a, size_t b) { return grab(a * b); }
void *realloc(void *p, size_t n)
{
	void *q = grab(n);
	if (p && q)
		memcpy(q, p, ((size_t *)p)[-2] < n ? ((size_t *)p)[-2] : n);
	return q;
}
void *memalign(size_t a, size_t n) { char *p = grab(n + a); return p ? (void *)(((size_t)p + a - 1) & ~(a - 1)) : 0; }
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **r, size_t a, size_t n) { *r = memalign(a, n); return *r ? 0 : 12; }
size_t malloc_usable_size(void *p) { return p ? ((size_t *)p)[-2] : 0; }
`

// TestUnknownMallocPreloaded: an allocator heapsift cannot name is still
// refused, by the module that defines malloc.
func TestUnknownMallocPreloaded(t *testing.T) {
	requirePtrace(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	dir := t.TempDir()
	src, so := filepath.Join(dir, "bump.c"), filepath.Join(dir, "libbump.so")
	if err := os.WriteFile(src, []byte(interposer), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-O1", "-fPIC", "-shared", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bin := testprog.Build(t, "graph")
	pid, _ := testprog.StartPaused(t, bin, "LD_PRELOAD="+so)
	refused(t, pid, nil, nil, "allocates with the malloc of "+so, "glibc malloc only")
}

// goProgram is a Go program without cgo: no C library at all.
const goProgram = `package main

import (
	"fmt"
	"os"
	"time"
)

var keep [][]byte

func main() {
	for i := 0; i < 100; i++ {
		keep = append(keep, make([]byte, 1000))
	}
	if len(os.Args) > 1 {
		fmt.Println("ready")
		time.Sleep(time.Hour)
	}
}
`

// TestGoProgram: a Go binary has no glibc malloc, and heapsift says so.
func TestGoProgram(t *testing.T) {
	requirePtrace(t)
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(goProgram), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module gotarget\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "gotarget")
	cmd := exec.Command(gobin, "build", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	p := exec.Command(bin, "wait")
	p.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := p.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// Nothing waits for it until it is killed: a wait4 here would steal
	// the tracer's notifications (see testprog.StartPaused).
	t.Cleanup(func() {
		syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("the Go program said %q: %v", line, err)
	}
	refused(t, p.Process.Pid, []string{bin}, nil, "is a Go program", "glibc malloc only")
}

// TestNewerGlibc: a glibc newer than heapsift knows gets a message naming
// it, not a report. The target is glibc 2.44 whose banner says 2.45.
func TestNewerGlibc(t *testing.T) {
	requirePtrace(t)
	if why := glibctest.Skipped(); why != "" {
		t.Skip(why)
	}
	var r44 glibctest.Release
	for _, r := range glibctest.Releases {
		if r.Minor == 44 {
			r44 = r
		}
	}
	g := glibctest.Get(t, r44)
	libc, err := os.ReadFile(filepath.Join(g.LibDir, "libc.so.6"))
	if err != nil {
		t.Fatal(err)
	}
	from, to := []byte("release version 2.44."), []byte("release version 2.45.")
	if bytes.Count(libc, from) != 1 {
		t.Fatalf("glibc 2.44's banner %q is not in its libc.so.6 once", from)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "libc.so.6"), bytes.Replace(libc, from, to, 1), 0o755); err != nil {
		t.Fatal(err)
	}
	tc := g.Toolchain()
	tc.Name = "glibc-2.45-pretend"
	tc.Flags = append([]string{"-Wl,-rpath," + dir}, tc.Flags...) // the patched libc.so.6 first
	bin := testprog.BuildWith(t, "plain", tc)
	pid, _ := testprog.StartPaused(t, bin)
	maps, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/maps")
	if !bytes.Contains(maps, []byte(filepath.Join(dir, "libc.so.6"))) {
		t.Fatalf("the patched libc.so.6 is not loaded:\n%s", maps)
	}
	refused(t, pid, []string{bin, filepath.Join(t.TempDir(), "truth.json")}, []string{"HS_MODE=exit"},
		"glibc 2.45 is newer than any glibc heapsift knows", "2.27 to 2.44")
}
