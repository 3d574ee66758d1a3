package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/report"
	"golang.org/x/sys/unix"
)

// testEnv runs heapsift in-process, capturing its output.
func testEnv(t *testing.T, extraEnv ...string) (*env, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	var out, errb bytes.Buffer
	devnull, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devnull.Close() })
	vars := map[string]string{}
	for _, kv := range extraEnv {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	return &env{
		stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			if v, ok := vars[k]; ok {
				return v
			}
			return os.Getenv(k)
		},
		environ: func() []string { return append(os.Environ(), extraEnv...) },
		stdio:   [3]*os.File{devnull, devnull, devnull},
	}, &out, &errb
}

func requirePtrace(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil && strings.TrimSpace(string(b)) != "0" {
			t.Skipf("ptrace is not permitted here (yama ptrace_scope %s and not root)", strings.TrimSpace(string(b)))
		}
	}
}

// symbolModes runs each check with libc's debug symbols and without them.
var symbolModes = []struct {
	name string
	env  []string
}{
	{"symbols", nil},
	{"nosymbols", []string{"HEAPSIFT_NO_DEBUG_SYMBOLS=1"}},
}

func checkReport(t *testing.T, truth *testprog.Truth, out []byte) *report.Report {
	t.Helper()
	verdicts, err := testprog.ParseReport(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, f := range testprog.Check(truth, verdicts) {
		t.Error(f)
	}
	var rep report.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

func fixtures(t *testing.T) []string {
	names, err := testprog.Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestLeaksLive(t *testing.T) {
	requirePtrace(t)
	for _, name := range fixtures(t) {
		for _, sm := range symbolModes {
			t.Run(name+"/"+sm.name, func(t *testing.T) {
				bin := testprog.Build(t, name)
				pid, truth := testprog.StartPaused(t, bin)
				e, out, errb := testEnv(t, sm.env...)
				code := e.main([]string{"leaks", "--json", strconv.Itoa(pid)})
				wantCode := exitOK
				if len(truth.Leaked) > 0 {
					wantCode = exitLeaks
				}
				if code != wantCode {
					t.Errorf("exit %d, want %d; stderr: %s", code, wantCode, errb)
				}
				rep := checkReport(t, truth, out.Bytes())
				if sm.env != nil {
					for _, f := range rep.Findings {
						for _, how := range f.How {
							if strings.Contains(how, "debug symbols") {
								t.Errorf("%s found with debug symbols although they were disabled", f.What)
							}
						}
					}
				}
				assertUntouched(t, pid)
			})
		}
	}
}

// assertUntouched checks that a live target is running, untraced.
func assertUntouched(t *testing.T, pid int) {
	t.Helper()
	states, err := testprog.ThreadStates(pid)
	if err != nil {
		t.Fatalf("target gone after analysis: %v", err)
	}
	for tid, st := range states {
		if st == 't' || st == 'T' || st == 'Z' || st == 'X' {
			t.Errorf("thread %d left in state %c", tid, st)
		}
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/status", pid, tid))
		if !bytes.Contains(status, []byte("TracerPid:\t0\n")) {
			t.Errorf("thread %d still traced", tid)
		}
	}
}

func TestRunExit(t *testing.T) {
	requirePtrace(t)
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			bin := testprog.Build(t, name)
			truthPath := filepath.Join(t.TempDir(), "truth.json")
			e, out, errb := testEnv(t, "HS_MODE=exit")
			code := e.main([]string{"run", "--json", "--", bin, truthPath})
			truth, err := testprog.LoadTruth(truthPath)
			if err != nil {
				t.Fatalf("%v; exit %d; stderr: %s", err, code, errb)
			}
			wantCode := exitOK
			if len(truth.Leaked) > 0 {
				wantCode = exitLeaks
			}
			if code != wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, wantCode, errb)
			}
			checkReport(t, truth, out.Bytes())
		})
	}
}

func TestLeaksCore(t *testing.T) {
	requirePtrace(t)
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		t.Skip("gcore (from gdb) is not installed")
	}
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			bin := testprog.Build(t, name)
			pid, truth := testprog.StartPaused(t, bin)
			le, liveOut, lerrb := testEnv(t)
			le.main([]string{"leaks", "--json", strconv.Itoa(pid)})
			live := checkReport(t, truth, liveOut.Bytes())
			if len(lerrb.String()) > 0 && liveOut.Len() == 0 {
				t.Fatalf("live: %s", lerrb)
			}
			prefix := filepath.Join(t.TempDir(), "core")
			if out, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
				t.Fatalf("gcore: %v\n%s", err, out)
			}
			core := fmt.Sprintf("%s.%d", prefix, pid)
			for _, sm := range symbolModes {
				e, out, errb := testEnv(t, sm.env...)
				e.main([]string{"leaks", "--json", core})
				if out.Len() == 0 {
					t.Fatalf("%s: no report; stderr: %s", sm.name, errb)
				}
				sameVerdicts(t, live, checkReport(t, truth, out.Bytes()))
			}
			// Core-only mode: none of the binaries, no debug files.
			e, out, errb := testEnv(t)
			e.main([]string{"leaks", "--json", "--sysroot", t.TempDir(), "--debug-file-directory", t.TempDir(), core})
			if out.Len() == 0 {
				t.Fatalf("core-only: no report; stderr: %s", errb)
			}
			rep := checkReport(t, truth, out.Bytes())
			if rep.Target.Glibc != "unknown" {
				t.Errorf("core-only: glibc %q, want unknown (the libc file was hidden)", rep.Target.Glibc)
			}
		})
	}
}

func TestDemo(t *testing.T) {
	requirePtrace(t)
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler")
	}
	e, out, errb := testEnv(t)
	if code := e.main([]string{"demo", "--json"}); code != exitOK {
		t.Fatalf("demo exit %d: %s", code, errb)
	}
	var rep report.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	type want struct {
		kind   string
		size   uint64
		count  int
		string string
	}
	wants := []want{
		{"definite", 40, 40, ""},                    // struct request on the error path
		{"indirect", 40, 40, "GET /api/users/5 HT"}, // its request line
		{"indirect", 40, 29, "cached-"},             // the dropped cache
		{"definite", 72, 1, ""},                     // the handler object
		{"definite", 40, 1, "cached-"},              // the cache head
	}
	if len(rep.Groups) != len(wants) {
		t.Fatalf("%d groups, want %d: %+v", len(rep.Groups), len(wants), rep.Groups)
	}
	for i, w := range wants {
		g := rep.Groups[i]
		if g.Kind != w.kind || g.Size != w.size || g.Count != w.count ||
			(w.string != "" && (len(g.Strings) == 0 || !strings.HasPrefix(g.Strings[0], w.string))) {
			t.Errorf("group %d = %s %d x %d %q, want %+v", i, g.Kind, g.Count, g.Size, g.Strings, w)
		}
	}
	if g := rep.Groups[3]; len(g.Symbols) != 1 || g.Symbols[0] != "g_ops (leaker)" {
		t.Errorf("the handler object should point to g_ops: %q", g.Symbols)
	}
	if rep.Summary.Reachable.Chunks == 0 {
		t.Errorf("the demo's config and live sessions should be reachable")
	}
}

func TestExitCodes(t *testing.T) {
	requirePtrace(t)
	cases := []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{}, exitUsage, "Usage"},
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"leaks"}, exitUsage, "one PID"},
		{[]string{"leaks", "notapid"}, exitUsage, "neither a process id nor a core file"},
		{[]string{"leaks", "2147483646"}, exitFailure, "no process"},
		{[]string{"leaks", "/etc/passwd"}, exitFailure, "not an x86-64 ELF core"},
		{[]string{"run"}, exitUsage, "needs a program"},
		{[]string{"run", "--", "/bin/true"}, exitOK, ""},
		{[]string{"run", "--", "/bin/sh", "-c", "exit 7"}, 7, ""},
		{[]string{"run", "--", "/bin/sh", "-c", "kill -SEGV $$"}, 128 + 11, "signal"},
		{[]string{"run", "--", "/nonexistent/program"}, exitFailure, "nonexistent"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			e, _, errb := testEnv(t)
			if code := e.main(tc.args); code != tc.code {
				t.Errorf("exit %d, want %d; stderr: %s", code, tc.code, errb)
			}
			if !strings.Contains(errb.String(), tc.msg) {
				t.Errorf("stderr %q lacks %q", errb, tc.msg)
			}
		})
	}
}

func TestCppTypeNames(t *testing.T) {
	requirePtrace(t)
	bin := testprog.Build(t, "cpp")
	pid, _ := testprog.StartPaused(t, bin)
	e, out, errb := testEnv(t)
	e.main([]string{"leaks", "--json", strconv.Itoa(pid)})
	var rep report.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v; stderr: %s", err, errb)
	}
	types := map[string]string{}
	for _, g := range rep.Groups {
		if g.Type != "" {
			types[g.Type] = g.Kind
		}
	}
	for _, want := range []string{"Widget", "ns::Gadget", "Box<int>", "ns::inner::Deep<long, 3>"} {
		if types[want] != "definite" {
			t.Errorf("no definite group of type %s; types: %v", want, types)
		}
	}
}

// TestDump writes a core of a live fixture with heapsift dump: the core
// analyzes to the same exact verdicts, and gdb can read its stack.
func TestDump(t *testing.T) {
	requirePtrace(t)
	for _, name := range []string{"plain", "threads", "mmapped"} {
		t.Run(name, func(t *testing.T) {
			bin := testprog.Build(t, name)
			pid, truth := testprog.StartPaused(t, bin)
			core := filepath.Join(t.TempDir(), "dump.core")
			e, _, errb := testEnv(t)
			if code := e.main([]string{"dump", strconv.Itoa(pid), "-o", core}); code != exitOK {
				t.Fatalf("dump exit %d: %s", code, errb)
			}
			assertUntouched(t, pid)
			e, out, errb := testEnv(t)
			e.main([]string{"leaks", "--json", core})
			if out.Len() == 0 {
				t.Fatalf("no report from the dumped core: %s", errb)
			}
			checkReport(t, truth, out.Bytes())
			if gdb, err := exec.LookPath("gdb"); err == nil {
				bt, err := exec.Command(gdb, "-batch", "-nx", "-ex", "bt", bin, core).CombinedOutput()
				if err != nil || !bytes.Contains(bt, []byte("#0 ")) || !bytes.Contains(bt, []byte("main")) {
					t.Errorf("gdb cannot read the dumped core: %v\n%s", err, bt)
				}
			}
		})
	}
}

// TestKernelCore analyzes cores that the kernel itself wrote (default
// coredump_filter) when a parked fixture was killed by SIGSEGV.
func TestKernelCore(t *testing.T) {
	requirePtrace(t)
	pattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Skipf("no core_pattern: %v", err)
	}
	pat := strings.TrimSpace(string(pattern))
	if strings.HasPrefix(pat, "|") || strings.Contains(pat, "/") {
		t.Skipf("core_pattern %q sends cores elsewhere (a pipe or another directory); this test needs a plain file name", pat)
	}
	for _, name := range []string{"plain", "threads", "freed", "cpp"} {
		t.Run(name, func(t *testing.T) {
			bin := testprog.Build(t, name)
			pid, truth := testprog.StartPaused(t, bin)
			lim := unix.Rlimit{Cur: unix.RLIM_INFINITY, Max: unix.RLIM_INFINITY}
			if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &lim, nil); err != nil {
				t.Skipf("cannot raise the core size limit: %v", err)
			}
			cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
			if err != nil {
				t.Fatal(err)
			}
			syscall.Kill(pid, syscall.SIGSEGV)
			core := waitKernelCore(t, pid, cwd, pat)
			e, out, errb := testEnv(t)
			e.main([]string{"leaks", "--json", core})
			if out.Len() == 0 {
				t.Fatalf("no report: %s", errb)
			}
			checkReport(t, truth, out.Bytes())
		})
	}
}

// waitKernelCore waits until pid is dead and returns the core it left.
func waitKernelCore(t *testing.T, pid int, dir, pattern string) string {
	t.Helper()
	name := strings.ReplaceAll(pattern, "%p", strconv.Itoa(pid))
	cands := []string{filepath.Join(dir, name), filepath.Join(dir, fmt.Sprintf("%s.%d", name, pid))}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		states, _ := testprog.ThreadStates(pid)
		if len(states) == 0 || states[pid] == 'Z' {
			for _, c := range cands {
				if st, err := os.Stat(c); err == nil && st.Size() > 0 {
					return c
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Skipf("the kernel wrote no core (looked for %v); core dumps may be disabled here", cands)
	return ""
}

// sameVerdicts checks that two reports of one process state agree on every
// chunk's verdict and on the totals.
func sameVerdicts(t *testing.T, a, b *report.Report) {
	t.Helper()
	if a.Summary != b.Summary {
		t.Errorf("summaries differ:\n live %+v\n core %+v", a.Summary, b.Summary)
	}
	kinds := func(r *report.Report) map[string]string {
		m := map[string]string{}
		for _, g := range r.Groups {
			for _, addr := range g.Addresses {
				m[addr] = g.Kind + "/" + g.Fingerprint
			}
		}
		return m
	}
	ka, kb := kinds(a), kinds(b)
	for addr, k := range ka {
		if kb[addr] != k {
			t.Errorf("chunk %s: live %s, core %q", addr, k, kb[addr])
		}
	}
	if len(ka) != len(kb) {
		t.Errorf("live reports %d chunks, core %d", len(ka), len(kb))
	}
}
