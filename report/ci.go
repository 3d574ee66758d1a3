package report

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
)

// Suppression files hide known, accepted leak groups. One rule a line;
// '#' starts a comment. A rule is one or more matchers, all of which must
// hold:
//
//	fingerprint=4a59a30b76264ea7     the group's fingerprint
//	type=std::*                      the C++ type (a glob)
//	string="*session*"               any of the group's strings (a glob)
//	size=16-64                       the usable size, a range or one number
//	module=libfoo.so*                the module holding the vtable (a glob)
//	kind=possible                    definite, indirect or possible
//
// Values with spaces are double-quoted.

// A Rule is one suppression.
type Rule struct {
	Source  string // file:line
	matches []matcher
	text    string
}

type matcher struct {
	key, value string
	lo, hi     uint64 // for size
}

// Suppressions is a parsed suppression file.
type Suppressions struct{ Rules []Rule }

// ParseSuppressions reads suppression rules; name is used in messages.
func ParseSuppressions(r io.Reader, name string) (*Suppressions, error) {
	var s Suppressions
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		fields, err := splitFields(text)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, line, err)
		}
		rule := Rule{Source: fmt.Sprintf("%s:%d", name, line), text: text}
		for _, f := range fields {
			k, v, ok := strings.Cut(f, "=")
			if !ok || v == "" {
				return nil, fmt.Errorf("%s:%d: %q is not key=value", name, line, f)
			}
			m := matcher{key: k, value: v}
			switch k {
			case "fingerprint", "type", "string", "module":
				if _, err := path.Match(v, ""); err != nil {
					return nil, fmt.Errorf("%s:%d: bad pattern %q: %v", name, line, v, err)
				}
			case "kind":
				if v != "definite" && v != "indirect" && v != "possible" {
					return nil, fmt.Errorf("%s:%d: kind must be definite, indirect or possible", name, line)
				}
			case "size":
				lo, hi, ok := strings.Cut(v, "-")
				a, err1 := strconv.ParseUint(lo, 0, 64)
				b, err2 := a, error(nil)
				if ok {
					b, err2 = strconv.ParseUint(hi, 0, 64)
				}
				if err1 != nil || err2 != nil || b < a {
					return nil, fmt.Errorf("%s:%d: size must be N or LO-HI, not %q", name, line, v)
				}
				m.lo, m.hi = a, b
			default:
				return nil, fmt.Errorf("%s:%d: unknown matcher %q (fingerprint, type, string, size, module, kind)", name, line, k)
			}
			rule.matches = append(rule.matches, m)
		}
		s.Rules = append(s.Rules, rule)
	}
	return &s, sc.Err()
}

// splitFields splits a rule on spaces, keeping double-quoted values whole.
func splitFields(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated quote")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

// Match returns the first rule that matches g, or nil.
func (s *Suppressions) Match(g *Group) *Rule {
	if s == nil {
		return nil
	}
	for i := range s.Rules {
		if s.Rules[i].matchesGroup(g) {
			return &s.Rules[i]
		}
	}
	return nil
}

func (r *Rule) matchesGroup(g *Group) bool {
	for _, m := range r.matches {
		ok := false
		switch m.key {
		case "fingerprint":
			ok, _ = path.Match(m.value, g.Fingerprint)
		case "type":
			ok, _ = path.Match(m.value, g.Type)
		case "module":
			ok, _ = path.Match(m.value, g.VtableModule)
		case "kind":
			ok = g.Kind == m.value
		case "size":
			ok = g.Size >= m.lo && g.Size <= m.hi
		case "string":
			for _, s := range g.Strings {
				if y, _ := path.Match(m.value, s); y {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// Suppress moves the groups that a rule matches from r.Groups to
// r.Suppressed.
func (r *Report) Suppress(s *Suppressions) {
	if s == nil {
		return
	}
	kept := r.Groups[:0]
	for _, g := range r.Groups {
		if rule := s.Match(&g); rule != nil {
			g.SuppressedBy = rule.Source
			r.Suppressed = append(r.Suppressed, g)
			continue
		}
		kept = append(kept, g)
	}
	r.Groups = kept
}

// A Baseline is the set of leak groups a project accepts, written by
// WriteBaseline and compared with CompareBaseline.
type Baseline struct {
	entries map[baseKey]baseEntry
}

type baseKey struct{ fingerprint, kind string }

type baseEntry struct {
	count int
	bytes uint64
}

// WriteBaseline records the report's groups as a commented, diff-friendly
// text file: fingerprint, kind, count, bytes, size, type and an example
// string on each line.
func WriteBaseline(w io.Writer, r *Report) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "# heapsift baseline: leak groups that are known and accepted.\n")
	fmt.Fprintf(bw, "# A run fails for a group not listed here, or one whose count or bytes grew.\n")
	fmt.Fprintf(bw, "# Target: %s\n", r.Target.Executable)
	fmt.Fprintf(bw, "# fingerprint     kind      count      bytes   size  type  example\n")
	for _, g := range r.Groups {
		typ := g.Type
		if typ == "" {
			typ = "-"
		}
		ex := ""
		if len(g.Strings) > 0 {
			ex = strconv.Quote(g.Strings[0])
		}
		fmt.Fprintf(bw, "%s  %-8s %6d %10d %6d  %s  %s\n", g.Fingerprint, g.Kind, g.Count, g.Bytes, g.Size, strconv.Quote(typ), ex)
	}
	return bw.Flush()
}

// ReadBaseline parses a baseline file; name is used in messages.
func ReadBaseline(rd io.Reader, name string) (*Baseline, error) {
	b := &Baseline{entries: map[baseKey]baseEntry{}}
	sc := bufio.NewScanner(rd)
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		f := strings.Fields(text)
		if len(f) < 4 {
			return nil, fmt.Errorf("%s:%d: want FINGERPRINT KIND COUNT BYTES (and more)", name, line)
		}
		count, err1 := strconv.Atoi(f[2])
		bytes, err2 := strconv.ParseUint(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s:%d: bad count or bytes", name, line)
		}
		b.entries[baseKey{f[0], f[1]}] = baseEntry{count, bytes}
	}
	return b, sc.Err()
}

// CompareBaseline marks every group that the baseline does not accept:
// new groups, and groups whose count or bytes grew by more than tolerance
// (a fraction: 0.1 allows 10% growth).
func (r *Report) CompareBaseline(b *Baseline, tolerance float64) {
	for i := range r.Groups {
		g := &r.Groups[i]
		e, ok := b.entries[baseKey{g.Fingerprint, g.Kind}]
		switch {
		case !ok:
			g.Baseline = "new"
		case float64(g.Count) > float64(e.count)*(1+tolerance) || float64(g.Bytes) > float64(e.bytes)*(1+tolerance):
			g.Baseline = fmt.Sprintf("grew (baseline %d blocks, %d bytes)", e.count, e.bytes)
		default:
			g.Baseline = "accepted"
		}
	}
}

// Failing returns the groups that should fail a CI run: of the given
// kinds, and not accepted by a baseline.
func (r *Report) Failing(kinds map[string]bool) []Group {
	var out []Group
	for _, g := range r.Groups {
		if kinds[g.Kind] && g.Baseline != "accepted" {
			out = append(out, g)
		}
	}
	return out
}

// WriteJUnit writes a JUnit XML report with one test case per analyzed
// process; a process with failing groups has a failure listing them.
func WriteJUnit(w io.Writer, cases []JUnitCase) error {
	type failure struct {
		Message string `xml:"message,attr"`
		Text    string `xml:",chardata"`
	}
	type testcase struct {
		Name      string   `xml:"name,attr"`
		Classname string   `xml:"classname,attr"`
		Failure   *failure `xml:"failure,omitempty"`
	}
	type suite struct {
		XMLName  xml.Name   `xml:"testsuite"`
		Name     string     `xml:"name,attr"`
		Tests    int        `xml:"tests,attr"`
		Failures int        `xml:"failures,attr"`
		Cases    []testcase `xml:"testcase"`
	}
	s := suite{Name: "heapsift", Tests: len(cases)}
	for _, c := range cases {
		tc := testcase{Name: c.Name, Classname: "heapsift.leaks"}
		if len(c.Failing) > 0 {
			s.Failures++
			var b strings.Builder
			var bytes uint64
			for _, g := range c.Failing {
				bytes += g.Bytes
				fmt.Fprintf(&b, "%s: %d bytes in %d blocks of %d bytes", g.Kind, g.Bytes, g.Count, g.Size)
				if g.Type != "" {
					fmt.Fprintf(&b, ", type %s", g.Type)
				}
				if len(g.Strings) > 0 {
					fmt.Fprintf(&b, ", e.g. %q", g.Strings[0])
				}
				fmt.Fprintf(&b, " [%s]\n", g.Fingerprint)
			}
			tc.Failure = &failure{Message: fmt.Sprintf("%d leak group(s), %d bytes", len(c.Failing), bytes), Text: b.String()}
		}
		s.Cases = append(s.Cases, tc)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", " ")
	if err := enc.Encode(s); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

// A JUnitCase is one analyzed process.
type JUnitCase struct {
	Name    string // e.g. "pid 1234: ./test --fast"
	Failing []Group
}
