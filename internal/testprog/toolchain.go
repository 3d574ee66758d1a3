package testprog

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A Toolchain builds fixtures against another C library than the system's
// (see internal/glibctest): its flags go to every compile and link, of the
// fixture and of its companion libraries.
type Toolchain struct {
	// Name tells builds apart in the cache ("glibc-2.31"); it must be a
	// valid file name.
	Name string
	// Flags are added to gcc's and g++'s command lines, before the
	// fixture's own hs-build: flags.
	Flags []string
	// NoCXX, when set, is why C++ fixtures cannot be built (the tests
	// skip them with this reason).
	NoCXX string
	// Env is added to the environment of the compilers.
	Env []string
}

// BuildWith is Build with a toolchain: it compiles testdata/<name>.c or
// .cpp with tc's flags (once per test binary and toolchain) and returns
// the executable's path.
func BuildWith(t testing.TB, name string, tc Toolchain) string {
	t.Helper()
	return defaultBuilder.BuildWith(t, name, tc)
}

// BuildWith compiles the named fixture with tc; see the package-level
// BuildWith.
func (b *Builder) BuildWith(t testing.TB, name string, tc Toolchain) string {
	t.Helper()
	if tc.Name == "" || strings.ContainsAny(tc.Name, `/\`) {
		t.Fatalf("testprog: bad toolchain name %q", tc.Name)
	}
	e := b.entry(tc.Name + ":" + name)
	e.once.Do(func() {
		b.init()
		if b.initErr != nil {
			e.err = b.initErr
			return
		}
		e.path, e.output, e.skip, e.err = b.compileWith(name, tc)
	})
	if e.skip != "" {
		t.Skip(e.skip)
	}
	if e.err != nil {
		t.Fatalf("testprog: building %s with %s: %v", name, tc.Name, e.err)
	}
	if e.output != "" {
		t.Logf("testprog: compiler output for %s with %s:\n%s", name, tc.Name, e.output)
	}
	return e.path
}

// compileWith builds one fixture and its libraries with tc into a
// directory of its own (the zero Toolchain: the system's compiler, into
// the output directory itself).
func (b *Builder) compileWith(name string, tc Toolchain) (path, output, skip string, err error) {
	if name == "" || strings.ContainsAny(name, `/\`) {
		return "", "", "", fmt.Errorf("bad fixture name %q", name)
	}
	src, cxx, err := findSource(b.src, name)
	if err != nil {
		return "", "", "", err
	}
	if cxx && tc.NoCXX != "" {
		return "", "", tc.NoCXX, nil
	}
	text, err := os.ReadFile(src)
	if err != nil {
		return "", "", "", err
	}
	out := filepath.Join(b.out, tc.Name)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", "", "", err
	}
	flags, libs := directives(text)
	var outputs []string
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		return "", "", "testprog: gcc not found: " + err.Error(), nil
	}
	for _, lib := range libs {
		le := b.entry(tc.Name + ":lib:" + lib)
		le.once.Do(func() {
			stem := strings.TrimSuffix(lib, filepath.Ext(lib))
			le.path = filepath.Join(out, "lib"+stem+".so")
			args := append([]string{"-O0", "-g", "-fPIC", "-shared", "-Wall", "-I", b.src}, tc.Flags...)
			le.output, le.err = runEnv(tc.Env, gcc, append(args, "-o", le.path, filepath.Join(b.src, lib))...)
		})
		if le.err != nil {
			return "", le.output, "", le.err
		}
		if le.output != "" {
			outputs = append(outputs, le.output)
		}
	}
	compiler, args := "gcc", []string{"-std=gnu11"}
	if cxx {
		compiler, args = "g++", []string{"-std=gnu++17"}
	}
	cc, err := exec.LookPath(compiler)
	if err != nil {
		return "", "", "testprog: " + compiler + " not found: " + err.Error(), nil
	}
	path = filepath.Join(out, name)
	args = append(args, "-O0", "-g", "-pthread", "-Wall", "-I", b.src)
	args = append(args, tc.Flags...)
	args = append(args, flags...)
	args = append(args, "-o", path, src, "-ldl")
	o, err := runEnv(tc.Env, cc, args...)
	if o != "" {
		outputs = append(outputs, o)
	}
	return path, strings.Join(outputs, "\n"), "", err
}

// runEnv is run with extra environment variables.
func runEnv(env []string, prog string, args ...string) (string, error) {
	if len(env) == 0 {
		return run(prog, args...)
	}
	cmd := exec.Command(prog, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if err != nil {
		return s, fmt.Errorf("%s %s: %v\n%s", prog, strings.Join(args, " "), err, s)
	}
	return s, nil
}
