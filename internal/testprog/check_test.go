package testprog

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// sample is a small truth with one chunk of every kind.
func sample() *Truth {
	set := func(a ...uint64) AddrSet {
		s := AddrSet{}
		for _, v := range a {
			s[v] = struct{}{}
		}
		return s
	}
	return &Truth{
		PID:             1,
		Leaked:          set(0x10, 0x20, 0x30, 0x40, 0x50),
		Definite:        set(0x10, 0x20),
		Indirect:        set(0x30),
		Cycles:          [][]uint64{{0x40, 0x50}},
		Possible:        set(0x60),
		PossibleAllowed: set(0x70),
		Reachable:       set(0x80),
		Freed:           set(0x90),
	}
}

// perfectReport is a report that passes: truth's verdicts, the first
// member of each cycle definite.
func perfectReport(t *Truth) map[uint64]string {
	r := map[uint64]string{}
	for a := range t.Definite {
		r[a] = KindDefinite
	}
	for a := range t.Indirect {
		r[a] = KindIndirect
	}
	for _, c := range t.Cycles {
		for i, a := range c {
			r[a] = KindIndirect
			if i == 0 {
				r[a] = KindDefinite
			}
		}
	}
	for a := range t.Possible {
		r[a] = KindPossible
	}
	return r
}

func TestCheckPasses(t *testing.T) {
	tr := sample()
	r := perfectReport(tr)
	if f := Check(tr, r); f != nil {
		t.Errorf("perfect report: %q", f)
	}
	r[0x70] = KindPossible // possible_allowed, as possible
	r[0x50] = KindDefinite // every cycle member may be definite
	if f := Check(tr, r); f != nil {
		t.Errorf("allowed variations: %q", f)
	}
}

func TestCheckFails(t *testing.T) {
	tests := []struct {
		name   string
		change func(r map[uint64]string)
		want   []string // one regexp per expected message
	}{
		{"missed", func(r map[uint64]string) { delete(r, 0x30) }, []string{`^missed 1 of 5 leaked chunks: 0x30$`}},
		{"reachable", func(r map[uint64]string) { r[0x80] = KindDefinite },
			[]string{`^1 false positives \(1 in the reachable sample\): 0x80$`}},
		{"freed", func(r map[uint64]string) { r[0x90] = KindIndirect },
			[]string{`^1 false positives \(1 freed\): 0x90$`}},
		{"allowed as leaked", func(r map[uint64]string) { r[0x70] = KindDefinite },
			[]string{`^1 false positives: 0x70$`}},
		{"definite as indirect", func(r map[uint64]string) { r[0x10] = KindIndirect },
			[]string{`^1 definite chunks not reported definite: 0x10$`}},
		{"indirect as definite", func(r map[uint64]string) { r[0x30] = KindDefinite },
			[]string{`^1 leaked chunks reported definite that are indirect: 0x30$`}},
		{"cycle without definite", func(r map[uint64]string) { r[0x40] = KindIndirect },
			[]string{`^cycle 0 \(2 members\) has no member reported definite: 0x40 0x50$`}},
		{"possible missing", func(r map[uint64]string) { delete(r, 0x60) },
			[]string{`^1 possible chunks not reported possible: 0x60$`}},
		{"possible as definite", func(r map[uint64]string) { r[0x60] = KindDefinite },
			[]string{`^1 possible chunks not reported possible: 0x60$`}},
		{"leaked as possible", func(r map[uint64]string) { r[0x30] = KindPossible },
			[]string{`^1 chunks reported possible that are not: 0x30$`}},
		{"unknown kind", func(r map[uint64]string) { r[0x30] = "leaked" },
			[]string{`^reported with an unknown kind: 0x30$`}},
		{"nothing reported", func(r map[uint64]string) {
			for a := range r {
				delete(r, a)
			}
		}, []string{`^missed 5 of 5`, `^2 definite chunks not`, `^cycle 0`, `^1 possible chunks not`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := sample()
			r := perfectReport(tr)
			tc.change(r)
			got := Check(tr, r)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d messages %q, want %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(got[i]) {
					t.Errorf("message %d = %q, want %s", i, got[i], w)
				}
			}
		})
	}
}

func TestCheckExamplesAreBounded(t *testing.T) {
	tr := sample()
	for a := uint64(0x1000); a < 0x1000+20*16; a += 16 {
		tr.Leaked[a] = struct{}{}
		tr.Indirect[a] = struct{}{}
	}
	f := Check(tr, perfectReport(sample()))
	if len(f) != 1 || !strings.HasSuffix(f[0], "0x1000 0x1010 0x1020 0x1030 0x1040 (+15 more)") {
		t.Errorf("got %q", f)
	}
}

func TestParseReport(t *testing.T) {
	doc := `{"version": 1, "groups": [
		{"kind": "definite", "addresses": ["0x10", "0X20"], "type": "Widget"},
		{"kind": "indirect", "addresses": ["0xAbC0"]},
		{"kind": "possible", "addresses": []},
		{"kind": "definite", "addresses": ["0x10"]}]}`
	got, err := ParseReport([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := map[uint64]string{0x10: KindDefinite, 0x20: KindDefinite, 0xabc0: KindIndirect}
	if len(got) != len(want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for a, k := range want {
		if got[a] != k {
			t.Errorf("%#x: got %q, want %q", a, got[a], k)
		}
	}
	for _, bad := range []string{
		`{"groups": [{"kind": "definite", "addresses": ["0x10"]}, {"kind": "possible", "addresses": ["0x10"]}]}`,
		`{"groups": [{"kind": "leaked", "addresses": ["0x10"]}]}`,
		`{"groups": [{"kind": "definite", "addresses": ["16"]}]}`,
		`{"leaks": []}`,
		`[]`,
		`not json`,
	} {
		if _, err := ParseReport([]byte(bad)); err == nil {
			t.Errorf("ParseReport(%s) succeeded", bad)
		}
	}
}

func TestParseTruth(t *testing.T) {
	tr, err := ParseTruth([]byte(`{"case": "x", "pid": 42, "mode": "pause",
		"leaked": ["0x10", "0x20"], "definite": ["0x10"], "indirect": [], "possible": ["0x30"],
		"reachable": ["0x40"], "possible_allowed": ["0x50"], "freed": ["0x60"],
		"cycle_any_of": [["0x20"]], "sizes": {"0x10": 8, "0x20": 16, "0x30": 24},
		"stats": {"leaked": 2}, "notes": "n"}`))
	if err != nil {
		t.Fatal(err)
	}
	if tr.Case != "x" || tr.PID != 42 || tr.Mode != "pause" || tr.Notes != "n" ||
		len(tr.Leaked) != 2 || !tr.Definite.Has(0x10) || !tr.Possible.Has(0x30) ||
		!tr.Reachable.Has(0x40) || !tr.PossibleAllowed.Has(0x50) || !tr.Freed.Has(0x60) ||
		len(tr.Cycles) != 1 || tr.Cycles[0][0] != 0x20 || tr.Sizes[0x30] != 24 {
		t.Errorf("parsed %+v", tr)
	}
	if got := tr.Leaked.Sorted(); len(got) != 2 || got[0] != 0x10 || got[1] != 0x20 {
		t.Errorf("Sorted = %#x", got)
	}
	for _, bad := range []string{`{"pid": 0}`, `{"pid": 1, "leaked": ["zz"]}`, `{"pid": 1, "sizes": {"0xq": 1}}`, `{`} {
		if _, err := ParseTruth([]byte(bad)); err == nil {
			t.Errorf("ParseTruth(%s) succeeded", bad)
		}
	}
}

// TestVerifyMemoryDetects makes sure the memory scan that TestFixtures
// relies on sees pointers: every chunk plain keeps reachable from a global
// or a chain, claimed leaked, must be caught.
func TestVerifyMemoryDetects(t *testing.T) {
	bin := Build(t, "plain")
	pid, tr := StartPaused(t, bin)
	n := len(tr.Reachable)
	for a := range tr.Reachable {
		tr.Definite[a] = struct{}{}
		tr.Leaked[a] = struct{}{}
		tr.Sizes[a] = 8
	}
	fails, err := verifyMemory(pid, tr)
	if os.IsPermission(err) {
		t.Skipf("cannot read the process's memory (ptrace restrictions?): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(fails) != n {
		t.Errorf("the scan caught %d of %d reachable chunks claimed definite: %q", len(fails), n, fails)
	}
}

// TestValgrindAgrees runs every fixture under valgrind (HS_VALGRIND=1; it
// takes tens of seconds) and compares its leak summary with the truth:
// valgrind's definitely lost blocks are the definite chunks plus one
// representative per cycle, its indirectly lost blocks the rest, in count
// and in bytes. libc's freeres is not run, so that the heap is the one
// heapsift sees at exit.
func TestValgrindAgrees(t *testing.T) {
	if os.Getenv("HS_VALGRIND") == "" {
		t.Skip("set HS_VALGRIND=1 to compare the fixtures with valgrind")
	}
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		t.Skip("valgrind not found")
	}
	// Where valgrind's rules differ from the truth's on purpose.
	extraDefinite := map[string][2]uint64{
		// valgrind does not scan read-only mappings; A4's only pointer
		// sits in a page made read-only.
		"anonroot": {1, 64},
	}
	names, err := Fixtures()
	if err != nil {
		t.Fatal(err)
	}
	summary := regexp.MustCompile(`(definitely|indirectly) lost: ([\d,]+) bytes in ([\d,]+) blocks`)
	num := func(s string) uint64 {
		v, _ := strconv.ParseUint(strings.ReplaceAll(s, ",", ""), 10, 64)
		return v
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bin := Build(t, name)
			truthPath := t.TempDir() + "/truth.json"
			cmd := exec.Command(vg, "--leak-check=full", "--run-libc-freeres=no", "--run-cxx-freeres=no", bin, truthPath)
			cmd.Env = append(os.Environ(), "HS_MODE=exit")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("valgrind: %v\n%s", err, out)
			}
			tr, err := LoadTruth(truthPath)
			if err != nil {
				t.Fatal(err)
			}
			var want [2][2]uint64 // [definite, indirect][blocks, bytes]
			want[0] = extraDefinite[name]
			for a := range tr.Definite {
				want[0][0]++
				want[0][1] += tr.Sizes[a]
			}
			for a := range tr.Indirect {
				want[1][0]++
				want[1][1] += tr.Sizes[a]
			}
			for _, c := range tr.Cycles {
				want[0][0]++
				want[0][1] += tr.Sizes[c[0]]
				for _, a := range c[1:] {
					want[1][0]++
					want[1][1] += tr.Sizes[a]
				}
			}
			var got [2][2]uint64
			for _, m := range summary.FindAllStringSubmatch(string(out), -1) {
				i := 0
				if m[1] == "indirectly" {
					i = 1
				}
				got[i] = [2]uint64{num(m[3]), num(m[2])}
			}
			if got != want {
				t.Errorf("valgrind [definite, indirect][blocks, bytes] = %v, truth says %v", got, want)
			}
		})
	}
}
