package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/corefile"
	"github.com/heapsift/heapsift/internal/testprog"
)

// gcoreOf makes a core of a paused fixture and returns the core's path and
// the fixture's truth.
func gcoreOf(t *testing.T, name string) (string, *testprog.Truth) {
	t.Helper()
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		t.Skip("gcore (from gdb) is not installed")
	}
	bin := testprog.Build(t, name)
	pid, truth := testprog.StartPaused(t, bin)
	prefix := filepath.Join(t.TempDir(), "core")
	if out, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("gcore: %v\n%s", err, out)
	}
	return fmt.Sprintf("%s.%d", prefix, pid), truth
}

// sysrootOf copies every file a core maps into a fresh sysroot folder, as a
// user does to analyze a core on another machine; replace swaps in other
// files for some base names.
func sysrootOf(t *testing.T, core string, replace map[string]string) string {
	t.Helper()
	c, err := corefile.Open(core, corefile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := t.TempDir()
	done := map[string]bool{}
	for _, m := range c.Mappings() {
		if !m.File() || addrspace.SharedMemory(m.Path) || done[m.Path] {
			continue
		}
		done[m.Path] = true
		src := m.Path
		if r, ok := replace[filepath.Base(m.Path)]; ok {
			src = r
		}
		dst := filepath.Join(root, m.Path)
		os.MkdirAll(filepath.Dir(dst), 0o755)
		if err := copyFile(src, dst); err != nil {
			t.Fatalf("copy %s: %v", src, err)
		}
	}
	return root
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// TestCoreFromAnotherMachine analyzes a core through --sysroot holding
// copies of its binaries: glibc is identified from the copy and C++ types
// are named from the executable's symbols.
func TestCoreFromAnotherMachine(t *testing.T) {
	requirePtrace(t)
	core, truth := gcoreOf(t, "cpp")
	root := sysrootOf(t, core, nil)
	e, out, errb := testEnv(t)
	e.main([]string{"leaks", "--json", "--no-debug-symbols", "--sysroot", root, core})
	if out.Len() == 0 {
		t.Fatalf("no report: %s", errb)
	}
	rep := checkReport(t, truth, out.Bytes())
	if rep.Target.Glibc != "2.36" && !strings.HasPrefix(rep.Target.Glibc, "2.") {
		t.Errorf("glibc %q: the libc copy in the sysroot was not used", rep.Target.Glibc)
	}
	typed := false
	for _, g := range rep.Groups {
		if g.Type == "Widget" {
			typed = true
		}
	}
	if !typed {
		t.Errorf("no Widget type: the executable copy in the sysroot was not used")
	}
}

// TestCoreWithWrongLibc gives the core a libc whose build-id differs: it
// must be refused with a warning, and the analysis must stay exact.
func TestCoreWithWrongLibc(t *testing.T) {
	requirePtrace(t)
	core, truth := gcoreOf(t, "plain")
	root := sysrootOf(t, core, map[string]string{"libc.so.6": "/usr/lib/x86_64-linux-gnu/libm.so.6"})
	e, out, errb := testEnv(t)
	e.main([]string{"leaks", "--json", "--sysroot", root, core})
	if out.Len() == 0 {
		t.Fatalf("no report: %s", errb)
	}
	rep := checkReport(t, truth, out.Bytes())
	warned := false
	for _, w := range rep.Warnings {
		if strings.Contains(w, "does not match") || strings.Contains(w, "not the one in the core") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning about the mismatched libc: %q", rep.Warnings)
	}
}
