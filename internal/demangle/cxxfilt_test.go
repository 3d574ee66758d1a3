package demangle

import (
	"bytes"
	"debug/elf"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// These tests compare the package with GNU c++filt on the dynamic symbols
// of libstdc++ (and any libraries listed in $DEMANGLE_TEST_LIBS, separated
// by the OS list separator). They are skipped when c++filt or libstdc++
// is not available.
//
// The contract checked is the one the package documents: whenever it
// reports ok, its output is exactly c++filt's.

// gnuCxxfilt returns the command line of GNU c++filt or skips the test.
// (LLVM's llvm-cxxfilt, installed as c++filt on some systems, prints
// differently.) By default c++filt refuses names longer than 1024 bytes
// to bound its stack use; --no-recurse-limit lifts that where supported.
func gnuCxxfilt(t *testing.T) []string {
	t.Helper()
	path, err := exec.LookPath("c++filt")
	if err != nil {
		t.Skip("c++filt not found")
	}
	out, err := exec.Command(path, "--version").Output()
	if err != nil || !bytes.Contains(out, []byte("GNU")) {
		t.Skipf("%s is not GNU c++filt", path)
	}
	t.Logf("using %s", strings.SplitN(string(out), "\n", 2)[0])
	cmd := []string{path}
	probe := exec.Command(path, "--no-recurse-limit")
	probe.Stdin = strings.NewReader("_Z1fv\n")
	if out, err := probe.Output(); err == nil && string(out) == "f()\n" {
		cmd = append(cmd, "--no-recurse-limit")
	}
	return cmd
}

// testLibraries returns libstdc++ (the first one found) and the
// libraries named in $DEMANGLE_TEST_LIBS.
func testLibraries() []string {
	var libs []string
	for _, pattern := range []string{
		"/usr/lib/*/libstdc++.so.6",
		"/usr/lib64/libstdc++.so.6",
		"/usr/lib/libstdc++.so.6",
		"/lib/*/libstdc++.so.6",
		"/lib64/libstdc++.so.6",
	} {
		if m, _ := filepath.Glob(pattern); len(m) > 0 {
			libs = append(libs, m[0])
			break
		}
	}
	for _, lib := range filepath.SplitList(os.Getenv("DEMANGLE_TEST_LIBS")) {
		if lib != "" {
			libs = append(libs, lib)
		}
	}
	return libs
}

// mangledSymbols returns the sorted, distinct Itanium-mangled symbol
// names in the dynamic and static symbol tables of the given ELF files.
func mangledSymbols(t *testing.T, libs []string) []string {
	t.Helper()
	seen := map[string]bool{}
	for _, lib := range libs {
		f, err := elf.Open(lib)
		if err != nil {
			t.Fatalf("%s: %v", lib, err)
		}
		dyn, _ := f.DynamicSymbols()
		static, _ := f.Symbols()
		f.Close()
		for _, s := range append(dyn, static...) {
			if strings.HasPrefix(s.Name, "_Z") {
				seen[s.Name] = true
			}
		}
	}
	syms := make([]string, 0, len(seen))
	for s := range seen {
		syms = append(syms, s)
	}
	slices.Sort(syms)
	return syms
}

// runCxxfilt demangles syms (one per line) with c++filt. Without
// --no-recurse-limit, names longer than 1024 bytes are left out.
func runCxxfilt(t *testing.T, cxxfilt []string, syms []string) (kept, demangled []string) {
	t.Helper()
	if !slices.Contains(cxxfilt, "--no-recurse-limit") {
		syms = slices.DeleteFunc(slices.Clone(syms), func(s string) bool { return len(s) > 1024 })
	}
	cmd := exec.Command(cxxfilt[0], cxxfilt[1:]...)
	cmd.Stdin = strings.NewReader(strings.Join(syms, "\n") + "\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("c++filt: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != len(syms) {
		t.Fatalf("c++filt printed %d lines for %d symbols", len(lines), len(syms))
	}
	return syms, lines
}

// compare checks every symbol that Symbol accepts against c++filt and
// returns how many Symbol accepted and how many c++filt demangled.
func compare(t *testing.T, syms, want []string) (ours, theirs int) {
	t.Helper()
	bad := 0
	for i, sym := range syms {
		if want[i] != sym {
			theirs++
		}
		got, ok := Symbol(sym)
		if !ok {
			continue
		}
		ours++
		if got != want[i] {
			if bad++; bad <= 20 {
				t.Errorf("Symbol(%q)\n got %q\nwant %q", sym, got, want[i])
			}
		}
	}
	if bad > 20 {
		t.Errorf("... %d mismatches in all", bad)
	}
	return ours, theirs
}

func TestCxxfiltLibraries(t *testing.T) {
	cxxfilt := gnuCxxfilt(t)
	libs := testLibraries()
	if len(libs) == 0 {
		t.Skip("libstdc++ not found")
	}
	syms := mangledSymbols(t, libs)
	if len(syms) < 1000 {
		t.Skipf("only %d mangled symbols in %v", len(syms), libs)
	}
	syms, want := runCxxfilt(t, cxxfilt, syms)
	ours, theirs := compare(t, syms, want)
	t.Logf("%s and %d more libraries: %d symbols, c++filt demangles %d, Symbol %d (%.2f%%)",
		libs[0], len(libs)-1, len(syms), theirs, ours, 100*float64(ours)/float64(len(syms)))

	// Coverage of the symbols that name types, the ones heapsift needs.
	total, ok := 0, 0
	for i, sym := range syms {
		if !strings.HasPrefix(sym, "_ZTV") && !strings.HasPrefix(sym, "_ZTI") && !strings.HasPrefix(sym, "_ZTS") {
			continue
		}
		total++
		name, good := TypeName(sym)
		if !good {
			continue
		}
		ok++
		_, rest, _ := strings.Cut(want[i], " for ")
		if rest != name {
			t.Errorf("TypeName(%q) = %q; c++filt says %q", sym, name, want[i])
		}
	}
	rate := float64(ok) / float64(total)
	t.Logf("TypeName accepts %d of %d _ZTV/_ZTI/_ZTS symbols (%.2f%%)", ok, total, 100*rate)
	if total == 0 || rate < 0.95 {
		t.Errorf("TypeName coverage %.2f%% of %d symbols, want at least 95%%", 100*rate, total)
	}
}

// TestCxxfiltMutations compares with c++filt on mutated library symbols,
// which are mostly malformed: Symbol must either reject them or agree
// with c++filt exactly.
func TestCxxfiltMutations(t *testing.T) {
	cxxfilt := gnuCxxfilt(t)
	libs := testLibraries()
	if len(libs) == 0 {
		t.Skip("libstdc++ not found")
	}
	base := mangledSymbols(t, libs)
	if len(base) == 0 {
		t.Skip("no mangled symbols")
	}
	n := 20000
	if testing.Short() {
		n = 2000
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "_0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	fragments := []string{"S_", "S0_", "S1_", "T_", "T0_", "I", "E", "J", "N", "Z", "L", "Li1E",
		"Dp", "DT", "X", "fp_", "K", "V", "r", "R", "O", "P", "F", "A3_", "M", "v", "St", "Sa",
		"Ss", "C1", "D0", "B5cxx11", "UlvE_", "Ut_", "sr", "cl", "cv", "Dn", "Do", "Dx", ".cold"}
	syms := make([]string, 0, n)
	for len(syms) < n {
		s := base[rng.IntN(len(base))]
		for range 1 + rng.IntN(3) {
			pos := 2 + rng.IntN(len(s)-1)
			switch rng.IntN(5) {
			case 0: // delete a byte
				if pos < len(s) {
					s = s[:pos] + s[pos+1:]
				}
			case 1: // insert a byte
				s = s[:pos] + string(alphabet[rng.IntN(len(alphabet))]) + s[pos:]
			case 2: // insert a grammar fragment
				s = s[:pos] + fragments[rng.IntN(len(fragments))] + s[pos:]
			case 3: // splice in the tail of another symbol
				o := base[rng.IntN(len(base))]
				s = s[:pos] + o[2+rng.IntN(len(o)-2):]
			case 4: // truncate
				s = s[:pos]
			}
		}
		if len(s) > 2 {
			syms = append(syms, s)
		}
	}
	syms, want := runCxxfilt(t, cxxfilt, syms)
	ours, theirs := compare(t, syms, want)
	t.Logf("%d mutated symbols: c++filt demangles %d, Symbol %d", len(syms), theirs, ours)
}

// TestCxxfiltDeep compares with c++filt on long lists and deeply nested
// or self-referencing structures, around c++filt's recursion limit.
func TestCxxfiltDeep(t *testing.T) {
	cxxfilt := gnuCxxfilt(t)
	sub := func(i int) string { // the i'th substitution: S_, S0_, S1_, ...
		if i == 0 {
			return "S_"
		}
		return "S" + strings.ToUpper(strconvBase36(i-1)) + "_"
	}
	repeat := func(n int, f func(k int) string) string {
		var b strings.Builder
		for k := range n {
			b.WriteString(f(k))
		}
		return b.String()
	}
	shapes := map[string]func(n int) string{
		"params":   func(n int) string { return "_Z1f" + strings.Repeat("i", n) },
		"targs":    func(n int) string { return "_Z1fI" + strings.Repeat("i", n) + "Evv" },
		"nesttmpl": func(n int) string { return "_Z1f" + strings.Repeat("3BoxI", n) + "i" + strings.Repeat("E", n) },
		"ptr":      func(n int) string { return "_Z1f" + strings.Repeat("P", n) + "i" },
		"qual":     func(n int) string { return "_ZN" + strings.Repeat("1a", n) + "E" },
		"fnptr":    func(n int) string { return "_Z1f" + strings.Repeat("PF", n) + "i" + strings.Repeat("vE", n) },
		"abitag":   func(n int) string { return "_Z1f" + strings.Repeat("B1t", n) + "v" },
		"array":    func(n int) string { return "_Z1f" + strings.Repeat("A1_", n) + "i" },
		"packs":    func(n int) string { return "_Z1fI" + strings.Repeat("J", n) + "i" + strings.Repeat("E", n) + "Evv" },
		"ptrsub": func(n int) string {
			return "_Z1fPi" + repeat(n, func(k int) string { return "P" + sub(k) })
		},
		"cvsub": func(n int) string {
			return "_Z1frVKi" + repeat(n, func(k int) string { return []string{"P", "VK"}[k%2] + sub(k) })
		},
		"tmplsub": func(n int) string {
			return "_Z1f3BoxIiE" + repeat(n, func(k int) string { return "S0_I" + sub(k+1) + "E" })
		},
		"fnsub": func(n int) string {
			return "_Z1fFivE" + repeat(n, func(k int) string { return "PF" + sub(k) + "vE" })
		},
	}
	var syms []string
	for _, f := range shapes {
		for _, n := range []int{10, 100, 200, 300, 400, 450, 500, 600, 800, 1000, 1020, 1030, 1500} {
			syms = append(syms, f(n))
		}
	}
	syms, want := runCxxfilt(t, cxxfilt, syms)
	ours, theirs := compare(t, syms, want)
	t.Logf("%d deep symbols: c++filt demangles %d, Symbol %d", len(syms), theirs, ours)
}
