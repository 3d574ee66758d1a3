package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/report"
)

// runFixture runs a fixture under `heapsift run` with extra flags and
// environment, returning the exit code, the parsed JSON report and stderr.
func runFixture(t *testing.T, name string, flags []string, env ...string) (int, *report.Report, string) {
	t.Helper()
	bin := testprog.Build(t, name)
	truthPath := filepath.Join(t.TempDir(), "truth.json")
	e, out, errb := testEnv(t, append([]string{"HS_MODE=exit"}, env...)...)
	args := append(append([]string{"run", "--json"}, flags...), "--", bin, truthPath)
	code := e.main(args)
	var rep report.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v; exit %d; stderr: %s", err, code, errb)
	}
	return code, &rep, errb.String()
}

func TestBaselineRoundTrip(t *testing.T) {
	requirePtrace(t)
	base := filepath.Join(t.TempDir(), "leaks.baseline")
	code, _, _ := runFixture(t, "baseline", []string{"--write-baseline", base})
	if code != exitLeaks {
		t.Fatalf("without a baseline: exit %d, want %d", code, exitLeaks)
	}
	text, _ := os.ReadFile(base)
	if !strings.Contains(string(text), `"widget-0"`) || !strings.HasPrefix(string(text), "# heapsift baseline") {
		t.Errorf("baseline file:\n%s", text)
	}
	if code, rep, stderr := runFixture(t, "baseline", []string{"--baseline", base}); code != exitOK {
		t.Errorf("same leaks with the baseline: exit %d; groups %+v\n%s", code, rep.Groups, stderr)
	}
	code, rep, _ := runFixture(t, "baseline", []string{"--baseline", base}, "HS_LEAK_GADGET=1")
	if code != exitLeaks {
		t.Errorf("a new kind of leak: exit %d, want %d", code, exitLeaks)
	}
	for _, g := range rep.Groups {
		isGadget := len(g.Strings) > 0 && g.Strings[0] == "gadget record"
		if isGadget != (g.Baseline == "new") {
			t.Errorf("group %v %q judged %q", g.Size, g.Strings, g.Baseline)
		}
	}
	if code, _, _ := runFixture(t, "baseline", []string{"--baseline", base}, "HS_LEAK_WIDGETS=6"); code != exitLeaks {
		t.Errorf("twice as many widgets: exit %d, want %d", code, exitLeaks)
	}
	if code, _, _ := runFixture(t, "baseline", []string{"--baseline", base, "--baseline-tolerance", "100"}, "HS_LEAK_WIDGETS=6"); code != exitOK {
		t.Errorf("twice as many widgets within a 100%% tolerance: exit %d", code)
	}
	if code, _, _ := runFixture(t, "baseline", []string{"--baseline", base, "--error-exitcode", "42"}, "HS_LEAK_GADGET=1"); code != 42 {
		t.Errorf("--error-exitcode 42: exit %d", code)
	}
}

// TestFingerprintsStable runs one fixture 10 times, each under a fresh
// address-space layout: the set of fingerprints must not change.
func TestFingerprintsStable(t *testing.T) {
	requirePtrace(t)
	var first []string
	for i := 0; i < 10; i++ {
		_, rep, _ := runFixture(t, "plain", nil)
		var fps []string
		for _, g := range rep.Groups {
			fps = append(fps, g.Kind+"/"+g.Fingerprint+"/"+strconv.Itoa(g.Count))
		}
		sort.Strings(fps)
		if i == 0 {
			first = fps
			if len(first) == 0 {
				t.Fatal("no groups")
			}
			continue
		}
		if strings.Join(fps, " ") != strings.Join(first, " ") {
			t.Fatalf("run %d fingerprints differ:\n%v\nfirst run:\n%v", i, fps, first)
		}
	}
}

func TestSuppressions(t *testing.T) {
	requirePtrace(t)
	_, plain, _ := runFixture(t, "plain", nil)
	var sessionFP string
	for _, g := range plain.Groups {
		if len(g.Strings) > 0 && strings.HasPrefix(g.Strings[0], "session-") {
			sessionFP = g.Fingerprint
		}
	}
	if sessionFP == "" {
		t.Fatal("no session-N group in plain")
	}
	cases := []struct {
		fixture, rule string
		hidden        func(g report.Group) bool
	}{
		{"plain", "fingerprint=" + sessionFP, func(g report.Group) bool { return g.Fingerprint == sessionFP }},
		{"plain", `string="session-*"`, func(g report.Group) bool { return len(g.Strings) > 0 && strings.HasPrefix(g.Strings[0], "session-") }},
		{"plain", "size=4000-4200", func(g report.Group) bool { return g.Size >= 4000 && g.Size <= 4200 }},
		{"cpp", "type=ns::*", func(g report.Group) bool { return strings.HasPrefix(g.Type, "ns::") }},
		{"cpp", "module=cpp", func(g report.Group) bool { return g.VtableModule == "cpp" }},
		{"cpp", "type=Widget kind=definite", func(g report.Group) bool { return g.Type == "Widget" && g.Kind == "definite" }},
	}
	for _, c := range cases {
		t.Run(c.fixture+" "+c.rule, func(t *testing.T) {
			sup := filepath.Join(t.TempDir(), "heapsift.supp")
			os.WriteFile(sup, []byte("# test rule\n"+c.rule+"\n"), 0o644)
			_, rep, stderr := runFixture(t, c.fixture, []string{"--suppressions", sup})
			if len(rep.Suppressed) == 0 {
				t.Fatalf("nothing suppressed; groups: %d", len(rep.Groups))
			}
			for _, g := range rep.Suppressed {
				if !c.hidden(g) || g.SuppressedBy != sup+":2" {
					t.Errorf("wrongly suppressed: %+v", g)
				}
			}
			for _, g := range rep.Groups {
				if c.hidden(g) {
					t.Errorf("not suppressed: %+v", g)
				}
			}
			if !regexp.MustCompile(`ERROR SUMMARY: \d+ errors from \d+ contexts \(suppressed: [1-9]\d* from [1-9]\d*\)`).MatchString(stderr) {
				t.Errorf("summary line missing: %s", stderr)
			}
		})
	}
	bad := filepath.Join(t.TempDir(), "bad.supp")
	os.WriteFile(bad, []byte("colour=blue\n"), 0o644)
	e, _, errb := testEnv(t, "HS_MODE=exit")
	if code := e.main([]string{"run", "--suppressions", bad, "--", "/bin/true"}); code != exitFailure || !strings.Contains(errb.String(), "bad.supp:1: unknown matcher") {
		t.Errorf("bad suppression file: exit %d, %s", code, errb)
	}
}

func TestFailOnAndJUnit(t *testing.T) {
	requirePtrace(t)
	junit := filepath.Join(t.TempDir(), "junit.xml")
	out := filepath.Join(t.TempDir(), "report.json")
	// interior leaks definite, indirect and possible chunks.
	code, _, _ := runFixture(t, "interior", []string{"--fail-on", "possible", "--junit", junit, "-o", out})
	if code != exitLeaks {
		t.Errorf("--fail-on possible: exit %d", code)
	}
	var suite struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Cases    []struct {
			Name    string `xml:"name,attr"`
			Failure *struct {
				Message string `xml:"message,attr"`
				Text    string `xml:",chardata"`
			} `xml:"failure"`
		} `xml:"testcase"`
	}
	data, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(data, &suite); err != nil {
		t.Fatal(err)
	}
	if suite.Tests != 1 || suite.Failures != 1 || suite.Cases[0].Failure == nil || !strings.Contains(suite.Cases[0].Failure.Text, "possible:") {
		t.Errorf("junit:\n%s", data)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("-o wrote no JSON: %v", err)
	}
	// clean fixture: the program's own status passes through.
	if code, _, _ := runFixture(t, "clean", []string{"--fail-on", "definite,indirect,possible"}); code != exitOK {
		t.Errorf("clean program: exit %d", code)
	}
}
