// Package testprog builds and runs heapsift's fixture programs for tests.
//
// A fixture is a small C or C++ program in the module's testdata directory
// that builds a known heap state, writes the exact truth about it as JSON
// (see Truth) and then parks (HS_MODE=pause) or returns from main
// (HS_MODE=exit). It follows the conventions of the acceptance corpus in
// ../shared/acceptance: it takes the truth file's path as its only
// argument; an "hs-build:" line in the source adds compiler flags and an
// "hs-lib:" line names a companion library source, built as lib<stem>.so
// next to the program.
//
// A typical test:
//
//	bin := testprog.Build(t, "graph")
//	pid, truth := testprog.StartPaused(t, bin)
//	reported := ... // run heapsift on pid
//	for _, msg := range testprog.Check(truth, reported) {
//		t.Error(msg)
//	}
package testprog

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// dirPrefix names the per-process build directories in os.TempDir().
const dirPrefix = "heapsift-testprog-"

// Builder compiles fixtures into a private directory, each at most once
// however many tests ask for it. The zero value is ready to use and finds
// the sources in <module root>/testdata. It is safe for concurrent use.
type Builder struct {
	// SourceDir overrides the fixture directory. Set it before first use.
	SourceDir string

	setup   sync.Once
	src     string
	out     string
	initErr error

	mu      sync.Mutex
	entries map[string]*buildEntry
}

// buildEntry is the outcome of building one fixture or library.
type buildEntry struct {
	once   sync.Once
	path   string
	output string // compiler diagnostics (warnings on success)
	skip   string // why the test must be skipped instead
	err    error
}

// defaultBuilder is the package's single, guarded build cache, shared by
// every test of one test binary.
var defaultBuilder Builder

// Build compiles testdata/<name>.c or testdata/<name>.cpp with the system
// gcc or g++ (once per test binary) and returns the executable's path. It
// skips the test when the compiler is missing and fails it when the build
// fails. Compiler warnings are logged.
func Build(t testing.TB, name string) string {
	t.Helper()
	return defaultBuilder.Build(t, name)
}

// Cleanup removes the default builder's output directory. A TestMain may
// call it after m.Run; otherwise a later test binary removes it once this
// process is gone.
func Cleanup() error {
	return defaultBuilder.Cleanup()
}

// Build compiles the named fixture; see the package-level Build.
func (b *Builder) Build(t testing.TB, name string) string {
	t.Helper()
	e := b.build(name)
	if e.skip != "" {
		t.Skip(e.skip)
	}
	if e.err != nil {
		t.Fatalf("testprog: building %s: %v", name, e.err)
	}
	if e.output != "" {
		t.Logf("testprog: compiler output for %s:\n%s", name, e.output)
	}
	return e.path
}

// Cleanup removes the builder's output directory, if it made one.
func (b *Builder) Cleanup() error {
	b.init()
	if b.out == "" {
		return nil
	}
	return os.RemoveAll(b.out)
}

// SourceDirectory returns the directory the fixtures are read from.
func (b *Builder) SourceDirectory() (string, error) {
	b.init()
	if b.src == "" {
		return "", b.initErr
	}
	return b.src, nil
}

// Fixtures lists the fixture names in the builder's source directory:
// every .c and .cpp file except the companion libraries that an hs-lib:
// line names.
func (b *Builder) Fixtures() ([]string, error) {
	src, err := b.SourceDirectory()
	if err != nil {
		return nil, err
	}
	return listFixtures(src)
}

// Fixtures lists the fixtures of the module's testdata directory.
func Fixtures() ([]string, error) {
	return defaultBuilder.Fixtures()
}

// EachLiveFixture runs fn on every fixture of the module's testdata,
// started paused, as parallel subtests of t; it skips t without ptrace
// permission (root), which whatever fn does with the process needs.
func EachLiveFixture(t *testing.T, fn func(t *testing.T, name string, pid int, truth *Truth)) {
	if os.Geteuid() != 0 {
		t.Skip("needs ptrace permission (run as root)")
	}
	names, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pid, truth := StartPaused(t, Build(t, name))
			fn(t, name, pid, truth)
		})
	}
}

func (b *Builder) init() {
	b.setup.Do(func() {
		b.src = b.SourceDir
		if b.src == "" {
			root, err := ModuleRoot()
			if err != nil {
				b.initErr = err
				return
			}
			b.src = filepath.Join(root, "testdata")
		}
		sweepStaleDirs()
		out, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", dirPrefix, os.Getpid()))
		if err != nil {
			b.initErr = err
			return
		}
		b.out = out
	})
}

// entry returns the cache entry for key, creating it.
func (b *Builder) entry(key string) *buildEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.entries == nil {
		b.entries = make(map[string]*buildEntry)
	}
	e := b.entries[key]
	if e == nil {
		e = new(buildEntry)
		b.entries[key] = e
	}
	return e
}

// build compiles fixture name once and returns its entry.
func (b *Builder) build(name string) *buildEntry {
	e := b.entry(name)
	e.once.Do(func() {
		b.init()
		if b.initErr != nil {
			e.err = b.initErr
			return
		}
		e.path, e.output, e.skip, e.err = b.compileWith(name, Toolchain{})
	})
	return e
}

// run runs a compiler and returns its combined output.
func run(prog string, args ...string) (string, error) {
	cmd := exec.Command(prog, args...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	out := strings.TrimSpace(buf.String())
	if err != nil {
		return out, fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, out)
	}
	return out, nil
}

// findSource returns the path of fixture name's source and whether it is
// C++.
func findSource(dir, name string) (string, bool, error) {
	for _, ext := range []string{".c", ".cpp"} {
		p := filepath.Join(dir, name+ext)
		if _, err := os.Stat(p); err == nil {
			return p, ext == ".cpp", nil
		}
	}
	return "", false, fmt.Errorf("no fixture %s.c or %s.cpp in %s", name, name, dir)
}

var (
	buildLine = regexp.MustCompile(`hs-build:[ \t]*(.*)`)
	libLine   = regexp.MustCompile(`hs-lib:[ \t]*(\S+)`)
)

// directives returns the extra compiler flags (hs-build:) and the companion
// library sources (hs-lib:) that a fixture's source names.
func directives(src []byte) (flags, libs []string) {
	for _, m := range buildLine.FindAllSubmatch(src, -1) {
		line := strings.TrimSpace(string(m[1]))
		line = strings.TrimSuffix(line, "*/") // a one-line C comment
		flags = append(flags, strings.Fields(line)...)
	}
	for _, m := range libLine.FindAllSubmatch(src, -1) {
		libs = append(libs, string(m[1]))
	}
	return flags, libs
}

// listFixtures lists the fixture names in dir.
func listFixtures(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	libs := map[string]bool{}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".c" && ext != ".cpp") {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		_, ls := directives(text)
		for _, l := range ls {
			libs[l] = true
		}
		names[e.Name()] = true
	}
	var out []string
	for n := range names {
		if !libs[n] {
			out = append(out, strings.TrimSuffix(n, filepath.Ext(n)))
		}
	}
	sort.Strings(out)
	return out, nil
}

// ModuleRoot returns the nearest directory at or above the current one
// that holds a go.mod file.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("testprog: no go.mod above the current directory")
		}
		dir = parent
	}
}

// sweepStaleDirs removes build directories left by test binaries that are
// no longer running (their names carry their pid).
func sweepStaleDirs() {
	matches, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPrefix+"*"))
	for _, m := range matches {
		rest := strings.TrimPrefix(filepath.Base(m), dirPrefix)
		pidStr, _, ok := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(m)
		}
	}
}
