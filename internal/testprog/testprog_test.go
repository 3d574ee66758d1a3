package testprog

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Cleanup()
	os.Exit(code)
}

// counts is what a fixture's truth must hold. A negative PossibleAllowed is
// a minimum: glibc's own interior-pointer chunks vary.
type counts struct {
	Definite, Indirect, Cycles, CycleMembers, Possible, Freed, PossibleAllowed int
}

// expected lists every fixture in testdata with its verdict counts, as the
// header comment of each source states them.
var expected = map[string]counts{
	"plain":      {Definite: 161},
	"graph":      {Definite: 7, Indirect: 46, Cycles: 5, CycleMembers: 20},
	"interior":   {Definite: 4, Indirect: 2, Possible: 8},
	"threads":    {Definite: 45, Indirect: 8, Freed: 84, PossibleAllowed: -14},
	"mmapped":    {Definite: 10, Indirect: 3, Possible: 2},
	"freed":      {Definite: 33, Indirect: 1, Freed: 32},
	"anonroot":   {Definite: 2, Possible: 1},
	"cpp":        {Definite: 24, Indirect: 2, Cycles: 2, CycleMembers: 9, PossibleAllowed: 2},
	"clean":      {PossibleAllowed: -4},
	"clean_cpp":  {PossibleAllowed: -3},
	"leaker":     {Definite: 6, Indirect: 43},
	"baseline":   {Definite: 3},
	"stats_peak": {Definite: 92, PossibleAllowed: 4},
	"deadstack":  {Definite: 4, PossibleAllowed: 4},
	"arenas":     {Definite: 42, Indirect: 10, Freed: 48, PossibleAllowed: -6},
	"static":     {Definite: 29, Indirect: 3, Freed: 9, PossibleAllowed: 1},
}

func countsOf(t *Truth) counts {
	return counts{
		Definite: len(t.Definite), Indirect: len(t.Indirect), Cycles: len(t.Cycles),
		CycleMembers: len(t.CycleMembers()), Possible: len(t.Possible), Freed: len(t.Freed),
		PossibleAllowed: len(t.PossibleAllowed),
	}
}

// checkCounts compares a truth's counts with the expected ones.
func checkCounts(t *testing.T, tr *Truth, want counts) {
	t.Helper()
	got := countsOf(tr)
	if want.PossibleAllowed < 0 {
		if got.PossibleAllowed < -want.PossibleAllowed {
			t.Errorf("possible_allowed: got %d, want at least %d", got.PossibleAllowed, -want.PossibleAllowed)
		}
		got.PossibleAllowed = want.PossibleAllowed
	}
	if got != want {
		t.Errorf("truth counts:\n got %+v\nwant %+v", got, want)
	}
}

// checkConsistent checks the truth's internal rules: disjoint kinds,
// leaked = definite ∪ indirect ∪ cycles, sizes known, addresses aligned.
func checkConsistent(t *testing.T, tr *Truth) {
	t.Helper()
	cyc := tr.CycleMembers()
	union := AddrSet{}
	for _, s := range []AddrSet{tr.Definite, tr.Indirect, cyc} {
		for a := range s {
			if union.Has(a) {
				t.Errorf("%#x is in two of definite, indirect and the cycles", a)
			}
			union[a] = struct{}{}
		}
	}
	if !reflect.DeepEqual(union, tr.Leaked) {
		t.Errorf("leaked (%d) is not definite ∪ indirect ∪ cycles (%d)", len(tr.Leaked), len(union))
	}
	seen := AddrSet{}
	for _, s := range []AddrSet{tr.Leaked, tr.Possible, tr.Reachable, tr.PossibleAllowed, tr.Freed} {
		for a := range s {
			if seen.Has(a) {
				t.Errorf("%#x is listed under two kinds", a)
			}
			seen[a] = struct{}{}
			if a == 0 || a%16 != 0 {
				t.Errorf("%#x is not a 16-aligned user pointer", a)
			}
		}
	}
	for _, s := range []AddrSet{tr.Leaked, tr.Possible} {
		for a := range s {
			if tr.Sizes[a] == 0 {
				t.Errorf("%#x has no size", a)
			}
		}
	}
}

func TestFixturesListed(t *testing.T) {
	names, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for n := range expected {
		want = append(want, n)
	}
	for _, n := range names {
		if _, ok := expected[n]; !ok {
			t.Errorf("fixture %s has no expected counts in this test", n)
		}
	}
	if len(names) != len(want) {
		t.Errorf("fixtures %v, expected %d", names, len(want))
	}
}

// TestFixtures builds every fixture, runs it in pause mode (truth counts,
// consistency, and a scan of its memory that must not contradict the
// truth) and in exit mode (status 0, same counts).
func TestFixtures(t *testing.T) {
	names, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		want, ok := expected[name]
		if !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bin := Build(t, name)
			t.Run("pause", func(t *testing.T) {
				pid, tr := StartPaused(t, bin)
				if tr.Mode != "pause" {
					t.Errorf("mode %q", tr.Mode)
				}
				checkCounts(t, tr, want)
				checkConsistent(t, tr)
				if f := Check(tr, perfectReport(tr)); f != nil {
					t.Errorf("Check rejects a perfect report: %q", f)
				}
				fails, err := verifyMemory(pid, tr)
				if os.IsPermission(err) {
					t.Skipf("cannot read the process's memory (ptrace restrictions?): %v", err)
				}
				if err != nil {
					t.Fatalf("reading the process's memory: %v", err)
				}
				for _, f := range fails {
					t.Error("memory contradicts the truth: " + f)
				}
				states, err := ThreadStates(pid)
				if err != nil || len(states) == 0 {
					t.Errorf("process gone after the memory scan: %v", err)
				}
			})
			t.Run("exit", func(t *testing.T) {
				tr := RunExit(t, bin)
				if tr.Mode != "exit" {
					t.Errorf("mode %q", tr.Mode)
				}
				checkCounts(t, tr, want)
				checkConsistent(t, tr)
			})
		})
	}
}

// TestFixturesCompileClean requires every fixture to build without a
// single -Wall warning.
func TestFixturesCompileClean(t *testing.T) {
	names, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			Build(t, name)
			if out := defaultBuilder.build(name).output; out != "" {
				t.Errorf("compiler output:\n%s", out)
			}
		})
	}
}

// TestLeakerByHand runs the demo fixture without a truth path, as a user
// would: it prints its pid and writes no truth file.
func TestLeakerByHand(t *testing.T) {
	runLeaker(t, Build(t, "leaker"))
}

// TestLeakerStandalone builds leaker.c alone in a directory, as a bundled
// copy is built (no hs_truth.h beside it), and runs it by hand.
func TestLeakerStandalone(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	src, err := defaultBuilder.SourceDirectory()
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(src, "leaker.c"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "leaker.c"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "leaker")
	out, err := exec.Command(gcc, "-O0", "-g", "-Wall", "-o", bin, filepath.Join(dir, "leaker.c")).CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Fatalf("standalone build: %v\n%s", err, out)
	}
	runLeaker(t, bin)
}

// runLeaker runs a leaker binary without a truth path, in exit mode (it
// must print nothing and write nothing) and in pause mode (it must print
// its pid).
func runLeaker(t *testing.T, bin string) {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HS_MODE=exit")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("leaker in exit mode: %v\n%s", err, out)
	}
	if len(out) != 0 {
		t.Errorf("leaker printed in exit mode: %q", out)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("leaker without a truth path wrote %d files", len(ents))
	}

	cmd = exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HS_MODE=pause")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	buf := make([]byte, 256)
	n, _ := stdout.Read(buf)
	if want := fmt.Sprintf("leaker: pid %d,", cmd.Process.Pid); !strings.HasPrefix(string(buf[:n]), want) {
		t.Errorf("leaker printed %q, want a line starting %q", buf[:n], want)
	}
}

func TestBuildUnknown(t *testing.T) {
	b := &Builder{SourceDir: t.TempDir()}
	e := b.build("nosuch")
	if e.err == nil || !strings.Contains(e.err.Error(), "no fixture") {
		t.Errorf("building a missing fixture: err = %v", e.err)
	}
	if e := b.build("../plain"); e.err == nil {
		t.Error("a fixture name with a slash was accepted")
	}
	if err := b.Cleanup(); err != nil {
		t.Error(err)
	}
}

func TestBuildDirectives(t *testing.T) {
	src := []byte("/* hs-lib: libx.c\n * hs-build: -DFOO=1  -Wno-unused\n * hs-build: -O0 */\n")
	flags, libs := directives(src)
	if !reflect.DeepEqual(flags, []string{"-DFOO=1", "-Wno-unused", "-O0"}) {
		t.Errorf("flags %q", flags)
	}
	if !reflect.DeepEqual(libs, []string{"libx.c"}) {
		t.Errorf("libs %q", libs)
	}
}

func TestListFixturesSkipsLibraries(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"a.c":      "// hs-lib: helper.c\n",
		"helper.c": "",
		"b.cpp":    "",
		"notes.h":  "",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := listFixtures(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Errorf("fixtures %q, want [a b]", got)
	}
}
