package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/internal/glibctest"
	"github.com/heapsift/heapsift/internal/testprog"
)

// TestStaticExecutable analyzes testdata/static.c linked statically
// with the system's glibc, as built (with its symbol table) and stripped:
// live with and without symbols, at exit, from a gcore core, and from the
// core alone (no executable file: everything from memory).
func TestStaticExecutable(t *testing.T) {
	requirePtrace(t)
	host := &glibctest.Glibc{Release: glibctest.Release{Minor: glibctest.HostMinor()}}
	for _, v := range []struct {
		name  string
		flags []string
	}{{"symtab", nil}, {"stripped", []string{"-s"}}} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			bin := testprog.BuildWith(t, "static", testprog.Toolchain{Name: "host-static-" + v.name, Flags: v.flags})
			t.Run("live+core", func(t *testing.T) {
				pid, truth := testprog.StartPaused(t, bin)
				live, code, stderr := leaksJSON(t, truth, glibcNoSymbols, strconv.Itoa(pid))
				checkLeakExit(t, truth, code, stderr)
				checkGlibcReport(t, host, bin, live)
				assertUntouched(t, pid)

				// With symbols allowed, an unstripped executable's own
				// symbol table confirms main_arena.
				sym, _, _ := leaksJSON(t, truth, nil, strconv.Itoa(pid))
				bySymbol := false
				for _, f := range sym.Findings {
					if f.What == "main_arena" {
						bySymbol = strings.Contains(strings.Join(f.How, ";"), "symbol table")
					}
				}
				if bySymbol != (v.name == "symtab") {
					t.Errorf("main_arena confirmed by the symbol table: %v, want %v (%+v)", bySymbol, v.name == "symtab", sym.Findings)
				}
				sameVerdicts(t, live, sym)

				core := coreOf(t, pid)
				rep, _, _ := leaksJSON(t, truth, glibcNoSymbols, core)
				checkGlibcReport(t, host, bin, rep)
				sameVerdicts(t, live, rep)

				// The core alone: no executable file, no debug files.
				rep, _, _ = leaksJSON(t, truth, nil, "--sysroot", t.TempDir(), "--debug-file-directory", t.TempDir(), core)
				rep.Warnings = nil // that the files are missing
				checkGlibcReport(t, host, bin, rep)
			})
			t.Run("exit", func(t *testing.T) { glibcExit(t, host, bin) })
		})
	}
}

// TestStaticNotGlibc: a static executable without any C library (nothing
// but a _start that exits) is refused plainly.
func TestStaticNotGlibc(t *testing.T) {
	requirePtrace(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "bare.c"), filepath.Join(dir, "bare")
	code := `void _start(void) { __asm__ volatile("mov $60, %eax; xor %edi, %edi; syscall"); }` + "\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-static", "-nostdlib", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	refused(t, 0, []string{bin}, nil, "statically linked, and no glibc malloc state was found")
}
