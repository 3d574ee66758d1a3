package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/report"
)

// forkerSource is a program whose processes leak in known ways, for the
// --follow-forks tests. Every leak is a 40-byte string "<tag>-<i>",
// definitely lost; argv[1] selects the shape of the process tree.
//
//	leakchild      the child leaks 3 "child" strings; the parent keeps a
//	               "parent-kept" string in a global and leaks nothing
//	parallel       two children run at the same time: child i leaks i+1
//	               "par<i>" strings
//	chain N        exec itself N times ("chain N-1"), each image leaking 2
//	               "chainpre" strings; the last one leaks 2 "chainend"
//	vfork PROG...  vfork; the child execs PROG...; the parent leaks nothing
//	orphan         a child forks a grandchild and exits; the grandchild
//	               (reparented) leaks 2 "orphan" strings 100 ms later
//	crash          the child leaks 1 "crash" string, then dies of SIGSEGV
//	sleep FILE     a child writes its pid to FILE and sleeps; the parent
//	               waits for it
const forkerSource = `#include "hs_truth.h"
#include <sys/resource.h>
#include <sys/wait.h>

static char *volatile g_kept;

static HS_NOINLINE void leak(const char *tag, int n)
{
	int i;
	for (i = 0; i < n; i++) {
		char *p = (char *)malloc(40);
		if (!p)
			hs_fail("malloc failed");
		memset(p, 0, malloc_usable_size(p));
		snprintf(p, 40, "%s-%d", tag, i);
		p = 0;
	}
}

/* Leave no copy of a leaked pointer in a dead frame or a register. */
static HS_NOINLINE void scrub(void)
{
	hs_scrub_stack(64 * 1024);
	hs_clear_regs();
}

static HS_NOINLINE void leave(const char *tag, int n, int code)
{
	leak(tag, n);
	scrub();
	exit(code);
}

static void reap_all(void)
{
	while (waitpid(-1, 0, 0) > 0)
		;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	g_kept = strdup("parent-kept");
	if (!strcmp(mode, "leakchild")) {
		if (fork() == 0)
			leave("child", 3, 0);
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "parallel")) {
		int p[2][2], i;
		if (pipe(p[0]) || pipe(p[1]))
			return 2;
		for (i = 0; i < 2; i++) {
			if (fork() == 0) {
				char c = 'x', tag[8];
				if (write(p[i][1], &c, 1) != 1 || read(p[1 - i][0], &c, 1) != 1)
					_exit(2);
				snprintf(tag, sizeof tag, "par%d", i);
				leave(tag, i + 1, 0);
			}
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "chain") && argc > 2) {
		int n = atoi(argv[2]);
		char next[16];
		if (n == 0)
			leave("chainend", 2, 0);
		leak("chainpre", 2);
		snprintf(next, sizeof next, "%d", n - 1);
		execl("/proc/self/exe", argv[0], "chain", next, (char *)0);
		return 2;
	}
	if (!strcmp(mode, "vfork") && argc > 2) {
		if (vfork() == 0) {
			execv(argv[2], argv + 2);
			_exit(127);
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "orphan")) {
		if (fork() == 0) {
			if (fork() == 0) {
				usleep(100000);
				leave("orphan", 2, 0);
			}
			_exit(0);
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "crash")) {
		if (fork() == 0) {
			struct rlimit rl = {0, 0};
			setrlimit(RLIMIT_CORE, &rl);
			leak("crash", 1);
			scrub();
			raise(SIGSEGV);
		}
		reap_all();
		return 0;
	}
	if (!strcmp(mode, "sleep") && argc > 2) {
		if (fork() == 0) {
			FILE *f = fopen(argv[2], "w");
			if (!f)
				_exit(2);
			fprintf(f, "%d\n", (int)getpid());
			fclose(f);
			for (;;)
				pause();
		}
		reap_all();
		return 0;
	}
	return 2;
}
`

var (
	forkerOnce  sync.Once
	forkerDir   string
	forkerBuild testprog.Builder
	staticOnce  sync.Once
	staticPath  string
	staticErr   error
)

// tempPrefix names temporary directories like internal/testprog's, so that
// a later test run removes them once this process is gone.
func tempPrefix() string { return fmt.Sprintf("heapsift-testprog-%d-", os.Getpid()) }

// forker builds forkerSource (once per test binary) and returns its path.
func forker(t *testing.T) string {
	t.Helper()
	forkerOnce.Do(func() {
		root, err := testprog.ModuleRoot()
		if err != nil {
			return
		}
		dir, err := os.MkdirTemp("", tempPrefix()+"forker-")
		if err != nil {
			return
		}
		hdr, err := os.ReadFile(filepath.Join(root, "testdata", "hs_truth.h"))
		if err != nil {
			return
		}
		if os.WriteFile(filepath.Join(dir, "hs_truth.h"), hdr, 0o644) != nil ||
			os.WriteFile(filepath.Join(dir, "forker.c"), []byte(forkerSource), 0o644) != nil {
			return
		}
		forkerDir = dir
		forkerBuild.SourceDir = dir
	})
	if forkerDir == "" {
		t.Fatal("cannot write the forker source")
	}
	return forkerBuild.Build(t, "forker")
}

// noLibcProgram builds a static program without any C library (it only
// calls exit): a process without glibc malloc, which --follow-forks skips.
func noLibcProgram(t *testing.T) string {
	t.Helper()
	staticOnce.Do(func() {
		dir, err := os.MkdirTemp("", tempPrefix()+"nolibc-")
		if err != nil {
			staticErr = err
			return
		}
		src := filepath.Join(dir, "nolibc.c")
		os.WriteFile(src, []byte("void _start(void) { __asm__ volatile(\"mov $60, %eax\\n\\txor %edi, %edi\\n\\tsyscall\"); }\n"), 0o644)
		staticPath = filepath.Join(dir, "nolibc")
		if out, err := exec.Command("gcc", "-static", "-nostdlib", "-o", staticPath, src).CombinedOutput(); err != nil {
			staticErr = fmt.Errorf("%v: %s", err, out)
		}
	})
	if staticErr != nil {
		t.Skipf("cannot link a program without libc: %v", staticErr)
	}
	return staticPath
}

// runTreeJSON runs `heapsift run --follow-forks --json` with extra flags and
// environment; it returns the exit code, the reports and stderr.
func runTreeJSON(t *testing.T, flags []string, argv []string, env ...string) (int, []report.Report, string) {
	t.Helper()
	e, out, errb := testEnv(t, env...)
	args := append(append([]string{"run", "--follow-forks", "--json"}, flags...), "--")
	code := e.main(append(args, argv...))
	var reps []report.Report
	if err := json.Unmarshal(out.Bytes(), &reps); err != nil {
		t.Fatalf("stdout is not a JSON array of reports: %v; exit %d; stdout %q; stderr: %s", err, code, out, errb)
	}
	return code, reps, errb.String()
}

// leaked returns the definite groups' strings of a report, counted by tag
// (the part before the last '-').
func leaked(rep *report.Report) map[string]int {
	m := map[string]int{}
	for _, g := range rep.Groups {
		if g.Kind != "definite" {
			continue
		}
		tag := "?"
		if len(g.Strings) > 0 {
			s := g.Strings[0]
			if i := strings.LastIndexByte(s, '-'); i > 0 {
				s = s[:i]
			}
			tag = s
		}
		m[tag] += g.Count
	}
	return m
}

// onePerPid checks that every report names a distinct process.
func onePerPid(t *testing.T, reps []report.Report) {
	t.Helper()
	seen := map[int]bool{}
	for _, r := range reps {
		if r.Target.PID <= 0 || len(r.Target.Args) == 0 || r.Target.Executable == "" {
			t.Errorf("report does not name its process: %+v", r.Target)
		}
		if seen[r.Target.PID] {
			t.Errorf("two reports for pid %d", r.Target.PID)
		}
		seen[r.Target.PID] = true
	}
}

// TestFollowForksScript: a shell script runs three fixture binaries, one of
// which leaks, a program without libc and the go command: exactly the
// leaking one fails, the others are skipped with one line each, each
// report names its process, and
// heapsift exits with 3. The shell itself (dash or bash: glibc programs
// on Debian) is analyzed like any process, and leaks nothing.
func TestFollowForksScript(t *testing.T) {
	requirePtrace(t)
	bin := testprog.Build(t, "baseline")
	static := noLibcProgram(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "suite.sh")
	// The Go toolchain too, a Go program, when there is one.
	gocmd, _ := exec.LookPath("go")
	goLine := ""
	if gocmd != "" {
		goLine = "GOTOOLCHAIN=local " + gocmd + " version >/dev/null"
	}
	os.WriteFile(script, []byte(fmt.Sprintf(`#!/bin/sh
HS_LEAK_WIDGETS=0 %[1]s %[2]s/t1.json
HS_LEAK_WIDGETS=5 %[1]s %[2]s/t2.json
HS_LEAK_WIDGETS=0 %[1]s %[2]s/t3.json
%[3]s static-arg
%[4]s
exit 0
`, bin, dir, static, goLine)), 0o755)
	junit := filepath.Join(dir, "junit.xml")
	outFile := filepath.Join(dir, "reports.json")
	code, reps, stderr := runTreeJSON(t, []string{"--junit", junit, "-o", outFile}, []string{script}, "HS_MODE=exit")
	if code != exitLeaks {
		t.Errorf("exit %d, want %d; stderr:\n%s", code, exitLeaks, stderr)
	}
	onePerPid(t, reps)
	var fixtures, failing, shells int
	for _, r := range reps {
		args := strings.Join(r.Target.Args, " ")
		switch {
		case r.Target.Executable == bin:
			fixtures++
			leaks := leaked(&r)
			if strings.HasSuffix(args, "/t2.json") {
				failing++
				if leaks["widget"] != 5 || len(leaks) != 1 {
					t.Errorf("the leaking run reports %v, want 5 widgets", leaks)
				}
			} else if len(leaks) != 0 {
				t.Errorf("%s: leaks %v, want none", args, leaks)
			}
		case strings.Contains(args, script):
			shells++
			if r.Summary.Definite.Chunks != 0 {
				t.Errorf("the shell leaks: %+v", r.Summary)
			}
		default:
			t.Errorf("unexpected report for %s (%s)", args, r.Target.Executable)
		}
	}
	if fixtures != 3 || failing != 1 {
		t.Errorf("%d fixture reports, %d failing; want 3 and 1", fixtures, failing)
	}
	// The shell is analyzed when it uses glibc malloc, else skipped.
	skips := regexp.MustCompile(`(?m)^heapsift: pid (\d+) \(([^)]*)\): skipped: (.*)$`).FindAllStringSubmatch(stderr, -1)
	staticSkips, goSkips := 0, 0
	for _, s := range skips {
		switch {
		case strings.HasPrefix(s[2], static+" static-arg"):
			staticSkips++
			if !strings.Contains(s[3], "no glibc malloc") {
				t.Errorf("program without libc skipped for %q", s[3])
			}
		case gocmd != "" && s[2] == gocmd+" version":
			goSkips++
			if !strings.Contains(s[3], "no glibc malloc") {
				t.Errorf("the go command skipped for %q", s[3])
			}
		case strings.Contains(s[2], script):
			shells++
		default:
			t.Errorf("unexpected skip: %s", s[0])
		}
	}
	if gocmd != "" && goSkips != 1 {
		t.Errorf("the go command skipped %d times, want 1; stderr:\n%s", goSkips, stderr)
	}
	if staticSkips != 1 || shells != 1 {
		t.Errorf("program without libc skipped %d times, shell seen %d times; want 1 and 1; stderr:\n%s", staticSkips, shells, stderr)
	}
	if n := len(regexp.MustCompile(`(?m)^==\d+== ERROR SUMMARY: `).FindAllString(stderr, -1)); n != len(reps) {
		t.Errorf("%d summary lines for %d reports", n, len(reps))
	}
	if !strings.Contains(stderr, fmt.Sprintf("%d process(es) exited: %d analyzed, 1 with failing leaks", len(reps)+len(skips), len(reps))) {
		t.Errorf("no tree summary line: %s", stderr)
	}
	// -o holds the same array; --junit one case per analyzed process.
	var fromFile []report.Report
	if data, err := os.ReadFile(outFile); err != nil || json.Unmarshal(data, &fromFile) != nil || len(fromFile) != len(reps) {
		t.Errorf("-o %s: %d reports, %v", outFile, len(fromFile), err)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string    `xml:"name,attr"`
			Failure *struct{} `xml:"failure"`
		} `xml:"testcase"`
	}
	data, _ := os.ReadFile(junit)
	if err := xml.Unmarshal(data, &suite); err != nil || suite.Tests != len(reps) || suite.Failures != 1 {
		t.Errorf("junit (%v):\n%s", err, data)
	}
	for _, c := range suite.Cases {
		if (c.Failure != nil) != strings.HasSuffix(c.Name, "/t2.json") || !regexp.MustCompile(`^pid \d+: `).MatchString(c.Name) {
			t.Errorf("junit case %q, failure %v", c.Name, c.Failure != nil)
		}
	}

	// The text reports name their processes too.
	e, out, errb := testEnv(t, "HS_MODE=exit")
	if code := e.main([]string{"run", "--follow-forks", "--", script}); code != exitLeaks {
		t.Errorf("text mode: exit %d; stderr:\n%s", code, errb)
	}
	for _, want := range []string{bin + " " + dir + "/t1.json", bin + " " + dir + "/t2.json", "definitely lost: 280 bytes in 5 blocks"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^==\d+== Command: `).FindAllString(out.String(), -1)); n != len(reps) {
		t.Errorf("%d Command lines for %d processes:\n%s", n, len(reps), out)
	}

	// A baseline of the whole tree accepts it; a new kind of leak fails.
	base := filepath.Join(dir, "leaks.baseline")
	if code, _, stderr := runTreeJSON(t, []string{"--write-baseline", base}, []string{script}, "HS_MODE=exit"); code != exitLeaks {
		t.Errorf("--write-baseline: exit %d: %s", code, stderr)
	}
	if code, _, stderr := runTreeJSON(t, []string{"--baseline", base}, []string{script}, "HS_MODE=exit"); code != exitOK {
		t.Errorf("with the tree's baseline: exit %d: %s", code, stderr)
	}
	if code, _, _ := runTreeJSON(t, []string{"--baseline", base, "--error-exitcode", "9"}, []string{script}, "HS_MODE=exit", "HS_LEAK_GADGET=1"); code != 9 {
		t.Errorf("a new leak against the baseline, --error-exitcode 9: exit %d", code)
	}
}

// TestFollowForksChild: a forked child leaks, its parent does not.
func TestFollowForksChild(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	code, reps, stderr := runTreeJSON(t, nil, []string{bin, "leakchild"})
	if code != exitLeaks {
		t.Errorf("exit %d, want %d: %s", code, exitLeaks, stderr)
	}
	onePerPid(t, reps)
	if len(reps) != 2 {
		t.Fatalf("%d reports, want 2: %s", len(reps), stderr)
	}
	child, parent := reps[0], reps[1] // the parent waits for the child
	if got := leaked(&child); got["child"] != 3 || len(got) != 1 {
		t.Errorf("child leaks %v, want 3 child strings", got)
	}
	if got := leaked(&parent); len(got) != 0 {
		t.Errorf("parent leaks %v, want nothing", got)
	}
	if parent.Summary.Reachable.Chunks == 0 || child.Target.PID == parent.Target.PID {
		t.Errorf("parent %+v, child %+v", parent.Target, child.Target)
	}
}

// TestFollowForksParallel: two children that run at the same time, each
// reported with its own leaks.
func TestFollowForksParallel(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	code, reps, stderr := runTreeJSON(t, nil, []string{bin, "parallel"})
	if code != exitLeaks || len(reps) != 3 {
		t.Fatalf("exit %d, %d reports; stderr: %s", code, len(reps), stderr)
	}
	onePerPid(t, reps)
	found := map[string]int{}
	for _, r := range reps {
		for tag, n := range leaked(&r) {
			found[tag] += n
			if len(leaked(&r)) != 1 {
				t.Errorf("pid %d leaks %v", r.Target.PID, leaked(&r))
			}
		}
	}
	if found["par0"] != 1 || found["par1"] != 2 || len(found) != 2 {
		t.Errorf("leaks %v, want par0 x1 and par1 x2 in separate reports", found)
	}
}

// TestFollowForksExecChain: a process that execs several times is reported
// once, in its final image; what the earlier images leaked went with them.
func TestFollowForksExecChain(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	code, reps, stderr := runTreeJSON(t, nil, []string{bin, "chain", "3"})
	if code != exitLeaks || len(reps) != 1 {
		t.Fatalf("exit %d, %d reports; stderr: %s", code, len(reps), stderr)
	}
	r := reps[0]
	if got := leaked(&r); got["chainend"] != 2 || len(got) != 1 {
		t.Errorf("leaks %v, want only the 2 chainend strings of the last image", got)
	}
	if !slices.Equal(r.Target.Args, []string{bin, "chain", "0"}) {
		t.Errorf("args %q, want the last image's", r.Target.Args)
	}
}

// TestFollowForksVfork: the child of vfork execs a fixture, whose report
// holds exactly its truth; the vfork parent is not deadlocked.
func TestFollowForksVfork(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	fixture := testprog.Build(t, "baseline")
	truthPath := filepath.Join(t.TempDir(), "truth.json")
	code, reps, stderr := runTreeJSON(t, nil, []string{bin, "vfork", fixture, truthPath}, "HS_MODE=exit")
	if code != exitLeaks || len(reps) != 2 {
		t.Fatalf("exit %d, %d reports; stderr: %s", code, len(reps), stderr)
	}
	truth, err := testprog.LoadTruth(truthPath)
	if err != nil {
		t.Fatal(err)
	}
	child, _ := json.Marshal(reps[0])
	if reps[0].Target.Executable != fixture {
		t.Fatalf("first report is %s, want the exec'd fixture", reps[0].Target.Executable)
	}
	checkReport(t, truth, child)
	if got := leaked(&reps[1]); len(got) != 0 {
		t.Errorf("vfork parent leaks %v", got)
	}
}

// TestFollowForksOrphan: a grandchild reparented away from the tree, which
// exits after the program itself, is still reported.
func TestFollowForksOrphan(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	code, reps, stderr := runTreeJSON(t, nil, []string{bin, "orphan"})
	if code != exitLeaks || len(reps) != 3 {
		t.Fatalf("exit %d, %d reports; stderr: %s", code, len(reps), stderr)
	}
	last := reps[len(reps)-1]
	if got := leaked(&last); got["orphan"] != 2 {
		t.Errorf("last report leaks %v, want the grandchild's 2 orphan strings", got)
	}
}

// TestFollowForksCrash: a child that dies of SIGSEGV is reported with its
// leak and its signal; the program's own status is 0.
func TestFollowForksCrash(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	e, out, errb := testEnv(t)
	if code := e.main([]string{"run", "--follow-forks", "--", bin, "crash"}); code != exitLeaks {
		t.Errorf("exit %d: %s", code, errb)
	}
	if !regexp.MustCompile(`==\d+== Process terminating: killed by signal 11`).MatchString(out.String()) ||
		!strings.Contains(out.String(), `"crash-0"`) {
		t.Errorf("output:\n%s", out)
	}
	// Without leaks that fail, the program's status passes through.
	if code, _, stderr := runTreeJSON(t, []string{"--fail-on", "possible"}, []string{"/bin/sh", "-c", "exit 7"}); code != 7 {
		t.Errorf("exit %d, want the program's 7: %s", code, stderr)
	}
}

// TestFollowForksSingle: without children, --follow-forks --json prints an
// array of one report, while plain run --json prints the object as ever.
func TestFollowForksSingle(t *testing.T) {
	requirePtrace(t)
	bin := testprog.Build(t, "baseline")
	truth := filepath.Join(t.TempDir(), "t.json")
	code, reps, _ := runTreeJSON(t, nil, []string{bin, truth}, "HS_MODE=exit")
	if code != exitLeaks || len(reps) != 1 || leaked(&reps[0])["widget"] != 3 {
		t.Errorf("exit %d, reports %+v", code, reps)
	}
	e, out, _ := testEnv(t, "HS_MODE=exit")
	e.main([]string{"run", "--json", "--", bin, truth})
	if !bytes.HasPrefix(bytes.TrimSpace(out.Bytes()), []byte("{")) {
		t.Errorf("plain run --json does not print one object: %.40q", out)
	}
	// No process analyzed at all: an empty array.
	static := noLibcProgram(t)
	code, reps, stderr := runTreeJSON(t, nil, []string{static})
	if code != exitOK || len(reps) != 0 || !strings.Contains(stderr, "skipped: no glibc malloc") {
		t.Errorf("program without libc: exit %d, %d reports, stderr %s", code, len(reps), stderr)
	}
}

// TestFollowForksInterrupt: a second Ctrl-C makes heapsift kill what is
// left of the tree (a child ignoring SIGINT here) instead of waiting for
// it; nothing stays behind, traced or stopped.
func TestFollowForksInterrupt(t *testing.T) {
	requirePtrace(t)
	bin := forker(t)
	pidFile := filepath.Join(t.TempDir(), "pid")
	e, _, errb := testEnv(t)
	done := make(chan int, 1)
	go func() { done <- e.main([]string{"run", "--follow-forks", "--", bin, "sleep", pidFile}) }()
	var pid int
	for deadline := time.Now().Add(10 * time.Second); pid == 0 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(pidFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
	}
	if pid == 0 {
		t.Fatal("the child did not start")
	}
	// heapsift is this process: its run command has SIGINT in hand (the
	// tree itself is not signalled, as if it ignored Ctrl-C).
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case code := <-done:
		t.Fatalf("one Ctrl-C ended heapsift (%d) while the tree runs", code)
	case <-time.After(100 * time.Millisecond):
	}
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case code := <-done:
		if code != 130 {
			t.Errorf("exit %d, want 130; stderr: %s", code, errb)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second Ctrl-C did not end heapsift")
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		states, _ := testprog.ThreadStates(pid)
		if len(states) == 0 || states[pid] == 'Z' {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child %d still there: %c", pid, states[pid])
		}
	}
}
