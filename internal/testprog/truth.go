package testprog

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// AddrSet is a set of user pointers (the addresses malloc returned).
type AddrSet map[uint64]struct{}

// Has reports whether a is in the set.
func (s AddrSet) Has(a uint64) bool {
	_, ok := s[a]
	return ok
}

// Sorted returns the addresses in increasing order.
func (s AddrSet) Sorted() []uint64 {
	out := make([]uint64, 0, len(s))
	for a := range s {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Truth is what a fixture program wrote about its own heap (the format of
// ../shared/acceptance/cases/hs_truth.h).
type Truth struct {
	Case string // the program's case name
	PID  int    // the process that wrote it
	Mode string // "pause" or "exit"

	// Leaked is every in-use chunk unreachable from the roots: Definite,
	// Indirect and the members of Cycles.
	Leaked AddrSet
	// Definite are leaked chunks that nothing points to; at most another
	// leaked chunk points inside one (a child's back-pointer to a list head
	// embedded in its parent), never at its start.
	Definite AddrSet
	// Indirect are leaked chunks that only leaked chunks point to (members
	// of Cycles are not in it).
	Indirect AddrSet
	// Possible are chunks reachable only through interior pointers.
	Possible AddrSet
	// Reachable is a sample of tricky reachable chunks: never to be
	// reported.
	Reachable AddrSet
	// PossibleAllowed are chunks glibc or C++ hold only through interior
	// pointers: they may be reported as possible, or not at all.
	PossibleAllowed AddrSet
	// Freed are free chunks: never to be reported.
	Freed AddrSet
	// Cycles are unreferenced cycles: at least one member of each must be
	// reported definite, the others definite or indirect.
	Cycles [][]uint64
	// Sizes holds the requested size of every leaked and possible chunk.
	Sizes map[uint64]uint64
	// Notes is the program's free-text description of its heap.
	Notes string
}

// CycleMembers returns the union of the cycles.
func (t *Truth) CycleMembers() AddrSet {
	s := AddrSet{}
	for _, c := range t.Cycles {
		for _, a := range c {
			s[a] = struct{}{}
		}
	}
	return s
}

// truthJSON is the file format.
type truthJSON struct {
	Case            string            `json:"case"`
	PID             int               `json:"pid"`
	Mode            string            `json:"mode"`
	Leaked          []string          `json:"leaked"`
	Definite        []string          `json:"definite"`
	Indirect        []string          `json:"indirect"`
	Possible        []string          `json:"possible"`
	Reachable       []string          `json:"reachable"`
	PossibleAllowed []string          `json:"possible_allowed"`
	Freed           []string          `json:"freed"`
	Cycles          [][]string        `json:"cycle_any_of"`
	Sizes           map[string]uint64 `json:"sizes"`
	Notes           string            `json:"notes"`
}

// LoadTruth reads and parses a truth file.
func LoadTruth(path string) (*Truth, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := ParseTruth(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return t, nil
}

// ParseTruth parses the contents of a truth file.
func ParseTruth(data []byte) (*Truth, error) {
	var raw truthJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("truth: %v", err)
	}
	if raw.PID <= 0 {
		return nil, fmt.Errorf("truth: bad pid %d", raw.PID)
	}
	t := &Truth{Case: raw.Case, PID: raw.PID, Mode: raw.Mode, Notes: raw.Notes, Sizes: map[uint64]uint64{}}
	sets := []struct {
		dst *AddrSet
		src []string
	}{
		{&t.Leaked, raw.Leaked}, {&t.Definite, raw.Definite}, {&t.Indirect, raw.Indirect},
		{&t.Possible, raw.Possible}, {&t.Reachable, raw.Reachable},
		{&t.PossibleAllowed, raw.PossibleAllowed}, {&t.Freed, raw.Freed},
	}
	for _, s := range sets {
		set, err := parseSet(s.src)
		if err != nil {
			return nil, err
		}
		*s.dst = set
	}
	for _, c := range raw.Cycles {
		cycle := make([]uint64, 0, len(c))
		for _, a := range c {
			v, err := ParseAddr(a)
			if err != nil {
				return nil, err
			}
			cycle = append(cycle, v)
		}
		t.Cycles = append(t.Cycles, cycle)
	}
	for k, v := range raw.Sizes {
		a, err := ParseAddr(k)
		if err != nil {
			return nil, err
		}
		t.Sizes[a] = v
	}
	return t, nil
}

func parseSet(addrs []string) (AddrSet, error) {
	s := make(AddrSet, len(addrs))
	for _, a := range addrs {
		v, err := ParseAddr(a)
		if err != nil {
			return nil, err
		}
		s[v] = struct{}{}
	}
	return s, nil
}

// ParseAddr parses a "0x…" hexadecimal address.
func ParseAddr(s string) (uint64, error) {
	h, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok {
		return 0, fmt.Errorf("address %q does not start with 0x", s)
	}
	v, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("bad address %q", s)
	}
	return v, nil
}

// Report kinds, as in heapsift's JSON.
const (
	KindDefinite = "definite"
	KindIndirect = "indirect"
	KindPossible = "possible"
)

// ParseReport reads the address verdicts of a `heapsift leaks --json` or
// `heapsift run --json` document: a top-level object whose "groups" each
// have a "kind" (definite, indirect or possible) and "addresses" ("0x…"
// user pointers). It fails, as the acceptance grader does, on a malformed
// group or an address reported under two kinds.
func ParseReport(data []byte) (map[uint64]string, error) {
	var doc struct {
		Groups *[]struct {
			Kind      string   `json:"kind"`
			Addresses []string `json:"addresses"`
		} `json:"groups"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("report: %v", err)
	}
	if doc.Groups == nil {
		return nil, fmt.Errorf("report: no \"groups\" list")
	}
	out := map[uint64]string{}
	for i, g := range *doc.Groups {
		if g.Kind != KindDefinite && g.Kind != KindIndirect && g.Kind != KindPossible {
			return nil, fmt.Errorf("report: group %d has kind %q", i, g.Kind)
		}
		for _, s := range g.Addresses {
			a, err := ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("report: group %d: %v", i, err)
			}
			if old, ok := out[a]; ok && old != g.Kind {
				return nil, fmt.Errorf("report: %#x reported both %s and %s", a, old, g.Kind)
			}
			out[a] = g.Kind
		}
	}
	return out, nil
}
