package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/heapsift/heapsift/internal/glibctest"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/report"
)

// versionFixtures run under every glibc of glibctest.Releases ("static" is
// linked with that glibc's libc.a).
var versionFixtures = []string{"plain", "graph", "interior", "freelists", "mmapped", "threads", "anonroot", "clean", "cpp", "deadstack", "static"}

// TestGlibcVersions builds fixtures against Debian's glibc 2.31, 2.36, 2.41,
// 2.43 and 2.44 (downloaded at test time, see internal/glibctest) and runs
// them under that glibc's own ld.so. heapsift must give exact verdicts
// without debug symbols, live, at exit and on a core, and find with
// libc6-dbg's symbols exactly what it found without them.
func TestGlibcVersions(t *testing.T) {
	requirePtrace(t)
	if why := glibctest.Skipped(); why != "" {
		t.Skip(why)
	}
	for _, r := range glibctest.Releases {
		t.Run(r.Name(), func(t *testing.T) {
			t.Parallel()
			g := glibctest.Get(t, r)
			t.Logf("glibc %s: Debian %s in %s", r.Name(), g.Debian, g.Root)
			tc := g.Toolchain()
			for _, name := range versionFixtures {
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					bin := testprog.BuildWith(t, name, tc)
					t.Run("live+core", func(t *testing.T) { glibcLiveCore(t, g, bin) })
					t.Run("exit", func(t *testing.T) { glibcExit(t, g, bin) })
				})
			}
		})
	}
}

// tracing serializes the analyses that ptrace a process, so that the
// parallel subtests load the machine less (package ptrace itself supports
// concurrent attaches: see its TestConcurrentAttach).
var tracing sync.Mutex

// traced runs heapsift with args while holding tracing.
func traced(e *env, args ...string) int {
	tracing.Lock()
	defer tracing.Unlock()
	return e.main(args)
}

// glibcNoSymbols is the environment that hides every debug file.
var glibcNoSymbols = []string{"HEAPSIFT_NO_DEBUG_SYMBOLS=1"}

// glibcLiveCore analyzes a paused fixture live without symbols, live
// with libc6-dbg's symbols (the findings must agree), and from a core
// without symbols.
func glibcLiveCore(t *testing.T, g *glibctest.Glibc, bin string) {
	pid, truth := testprog.StartPaused(t, bin)
	live, code, stderr := leaksJSON(t, truth, glibcNoSymbols, strconv.Itoa(pid))
	checkLeakExit(t, truth, code, stderr)
	checkGlibcReport(t, g, bin, live)
	assertUntouched(t, pid)

	if !isStaticFixture(bin) {
		// With libc6-dbg's symbols: the same structures, found by name.
		sym, _, _ := leaksJSON(t, truth, nil, "--debug-file-directory", g.DebugDir(t), strconv.Itoa(pid))
		sameFindingAddrs(t, live, sym)
	}

	core := coreOf(t, pid)
	rep, _, _ := leaksJSON(t, truth, glibcNoSymbols, core)
	checkGlibcReport(t, g, bin, rep)
	sameVerdicts(t, live, rep)

	// The core alone: no libc file, no executable, no debug files.
	rep, _, _ = leaksJSON(t, truth, nil, "--sysroot", t.TempDir(), "--debug-file-directory", t.TempDir(), core)
	// A core from heapsift dump holds libc's read-only data, banner
	// included; gcore's does not.
	if rep.Target.Glibc != "unknown" && (rep.Target.Glibc != g.Name() || isStaticFixture(bin)) {
		t.Errorf("core-only: glibc %q, want unknown or %s", rep.Target.Glibc, g.Name())
	}
}

// glibcExit runs a fixture under heapsift run without symbols.
func glibcExit(t *testing.T, g *glibctest.Glibc, bin string) {
	checkGlibcReport(t, g, bin, runExitJSON(t, bin))
}

// leaksJSON runs `heapsift leaks --json ARGS` in an environment with env
// added, fails the test if it prints no report, and returns the report,
// checked against truth, with heapsift's exit status and stderr.
func leaksJSON(t *testing.T, truth *testprog.Truth, env []string, args ...string) (*report.Report, int, string) {
	t.Helper()
	e, out, errb := testEnv(t, env...)
	code := traced(e, append([]string{"leaks", "--json"}, args...)...)
	if out.Len() == 0 {
		t.Fatalf("heapsift leaks %s: exit %d, no report; stderr: %s", strings.Join(args, " "), code, errb)
	}
	return checkReport(t, truth, out.Bytes()), code, errb.String()
}

// runExitJSON runs bin in exit mode under `heapsift run --json` without
// debug symbols, in an environment with env added, and returns the
// report, checked against the fixture's truth, exit status included.
func runExitJSON(t *testing.T, bin string, env ...string) *report.Report {
	t.Helper()
	truthPath := filepath.Join(t.TempDir(), "truth.json")
	e, out, errb := testEnv(t, append(append([]string{"HS_MODE=exit"}, glibcNoSymbols...), env...)...)
	code := traced(e, "run", "--json", "--", bin, truthPath)
	truth, err := testprog.LoadTruth(truthPath)
	if err != nil {
		t.Fatalf("%v (env %q); exit %d; stderr: %s", err, env, code, errb)
	}
	rep := checkReport(t, truth, out.Bytes())
	checkLeakExit(t, truth, code, errb.String())
	return rep
}

// checkLeakExit checks heapsift's exit status: 3 when the fixture leaks.
func checkLeakExit(t *testing.T, truth *testprog.Truth, code int, stderr string) {
	t.Helper()
	want := exitOK
	if len(truth.Leaked) > 0 {
		want = exitLeaks
	}
	if code != want {
		t.Errorf("exit %d, want %d; stderr: %s", code, want, stderr)
	}
}

// checkGlibcReport checks what a symbol-free report says about glibc:
// its version (static executables have none), no finding made with debug
// symbols, and no warning.
func checkGlibcReport(t *testing.T, g *glibctest.Glibc, bin string, rep *report.Report) {
	t.Helper()
	want := "unknown"
	if !isStaticFixture(bin) {
		want = g.Name()
	}
	if rep.Target.Glibc != want {
		t.Errorf("glibc %q, want %q", rep.Target.Glibc, want)
	}
	if isStaticFixture(bin) && g != nil {
		layout := false
		for _, f := range rep.Findings {
			if m := glibcLayoutFinding.FindStringSubmatch(f.What); m != nil {
				layout = true
				lo, _ := strconv.Atoi(m[1])
				hi := lo
				if m[2] != "" {
					hi, _ = strconv.Atoi(m[2])
				}
				if g.Minor < lo || g.Minor > hi {
					t.Errorf("static: inferred %q, but the executable has glibc %s", f.What, g.Name())
				}
			}
		}
		if !layout {
			t.Errorf("static: no inferred glibc layout among the findings %+v", rep.Findings)
		}
	}
	for _, f := range rep.Findings {
		for _, how := range f.How {
			if strings.Contains(how, "debug symbols") {
				t.Errorf("%s found with debug symbols although they were disabled", f.What)
			}
		}
	}
	for _, w := range rep.Warnings {
		t.Errorf("warning: %s", w)
	}
}

var glibcLayoutFinding = regexp.MustCompile(`^glibc 2\.(\d+)(?:–2\.(\d+))? layout$`)

// sameFindingAddrs checks that the symbol-free findings are where the debug
// symbols put them, and that the symbols were used.
func sameFindingAddrs(t *testing.T, nosym, sym *report.Report) {
	t.Helper()
	byWhat := map[string]uint64{}
	for _, f := range sym.Findings {
		byWhat[f.What] = uint64(f.Addr)
		used := false
		for _, how := range f.How {
			used = used || strings.Contains(how, "debug symbols")
		}
		if !used && (f.What == "main_arena" || f.What == "mp_") {
			t.Errorf("with libc6-dbg, %s was not found by its symbol: %v", f.What, f.How)
		}
	}
	for _, f := range nosym.Findings {
		if a, ok := byWhat[f.What]; !ok || a != uint64(f.Addr) {
			t.Errorf("%s: %#x without symbols (%v), %#x with them", f.What, uint64(f.Addr), f.How, a)
		}
	}
}

// isStaticFixture reports whether bin is the static fixture.
func isStaticFixture(bin string) bool {
	return strings.HasPrefix(filepath.Base(bin), "static")
}

// coreOf writes a core of pid with gcore, or with heapsift dump when
// gcore is missing or the process has guard regions inside its mappings:
// gdb 13's gcore writes a whole block of zeros when a read hits one, and
// glibc 2.42+ on Linux 6.13+ guards thread stacks with MADV_GUARD_INSTALL.
func coreOf(t *testing.T, pid int) string {
	t.Helper()
	dir := t.TempDir()
	if gcore, err := exec.LookPath("gcore"); err == nil && !hasGuardRegions(pid) {
		prefix := filepath.Join(dir, "core")
		if o, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
			t.Fatalf("gcore: %v\n%s", err, o)
		}
		return fmt.Sprintf("%s.%d", prefix, pid)
	}
	core := filepath.Join(dir, "dump.core")
	e, _, errb := testEnv(t)
	if code := traced(e, "dump", strconv.Itoa(pid), "-o", core); code != exitOK {
		t.Fatalf("dump exit %d: %s", code, errb)
	}
	t.Logf("core written by heapsift dump (gcore is missing or would zero the guarded stacks)")
	return core
}

// hasGuardRegions reports whether some page inside a writable anonymous
// mapping of pid cannot be read (a MADV_GUARD_INSTALL guard region).
func hasGuardRegions(pid int) bool {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return false
	}
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return false
	}
	defer mem.Close()
	var b [1]byte
	for _, line := range strings.Split(string(maps), "\n") {
		f := strings.Fields(line)
		if len(f) != 5 || !strings.HasPrefix(f[1], "rw") {
			continue // file-backed, special or not writable
		}
		var lo, hi uint64
		if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err != nil {
			continue
		}
		for p := lo; p < hi; p += 4096 {
			if _, err := mem.ReadAt(b[:], int64(p)); err != nil {
				return true
			}
		}
	}
	return false
}
