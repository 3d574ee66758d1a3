// Package report groups leaked chunks by a content fingerprint that is
// stable across runs and address-space layout randomization, and writes
// the leak report as text for people and JSON for machines.
package report

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/scan"
)

// Count is a number of chunks and their usable bytes.
type Count struct {
	Chunks uint64 `json:"chunks"`
	Bytes  uint64 `json:"bytes"`
}

func (c *Count) add(b uint64) { c.Chunks++; c.Bytes += b }

// Summary totals the verdicts.
type Summary struct {
	InUse     Count `json:"in_use"`
	Definite  Count `json:"definite"`
	Indirect  Count `json:"indirect"`
	Possible  Count `json:"possible"`
	Reachable Count `json:"reachable"`
}

// Target describes what was analyzed.
type Target struct {
	PID        int      `json:"pid,omitempty"`
	Core       string   `json:"core,omitempty"`
	Executable string   `json:"executable,omitempty"`
	Args       []string `json:"args,omitempty"`
	Glibc      string   `json:"glibc"`
}

// A Group is a set of leaked chunks with the same kind and fingerprint.
type Group struct {
	Fingerprint string `json:"fingerprint"`
	Kind        string `json:"kind"`
	Size        uint64 `json:"size"`
	Count       int    `json:"count"`
	Bytes       uint64 `json:"bytes"`
	Type        string `json:"type,omitempty"`
	// Symbols names what the example's first words point to in modules
	// (a function table, a string literal): "g_ops (leaker)".
	Symbols []string `json:"symbols,omitempty"`
	// VtableModule is the module that holds the type's vtable.
	VtableModule string `json:"vtable_module,omitempty"`
	// Baseline says how a baseline judged the group: "new", "grew
	// (...)" or "accepted"; empty without a baseline.
	Baseline string `json:"baseline,omitempty"`
	// SuppressedBy names the suppression rule (file:line) that hid it.
	SuppressedBy string   `json:"suppressed_by,omitempty"`
	Strings      []string `json:"strings"`
	Addresses    []string `json:"addresses"`
	Example      []byte   `json:"-"`
	Hexdump      []string `json:"hexdump"`
	ExampleAddr  string   `json:"example"`
}

// Report is a complete leak report.
type Report struct {
	Version int     `json:"version"`
	Target  Target  `json:"target"`
	Summary Summary `json:"summary"`
	Groups  []Group `json:"groups"`
	// Suppressed holds the groups that suppression rules hid.
	Suppressed []Group            `json:"suppressed,omitempty"`
	Findings   []heapwalk.Finding `json:"findings"`
	Warnings   []string           `json:"warnings"`
	Stats      Stats              `json:"stats"`
}

// Stats are facts about the analysis itself.
type Stats struct {
	Arenas       int    `json:"arenas"`
	Threads      int    `json:"threads"`
	Chunks       int    `json:"chunks"`
	ScannedBytes uint64 `json:"scanned_bytes"`
	Heuristic    int    `json:"reachable_by_heuristic"`
	// Snapshot says how a live target was frozen: "direct" (stopped for
	// the whole analysis) or "fork" (a copy-on-write copy was analyzed);
	// empty for a core.
	Snapshot string `json:"snapshot,omitempty"`
	// PauseMs is how long a live target was stopped, in milliseconds.
	PauseMs float64 `json:"pause_ms,omitempty"`
	// Timings are the phases of the analysis, in milliseconds.
	Timings *Timings `json:"timings,omitempty"`
}

// Timings are the durations of the phases of one analysis, in milliseconds.
type Timings struct {
	Freeze float64 `json:"freeze_ms"` // attach and stop (or open the core)
	Walk   float64 `json:"walk_ms"`   // find glibc's structures and every chunk
	Scan   float64 `json:"scan_ms"`   // roots and marking
	Roots  float64 `json:"roots_ms"`  // of Scan: index the chunks, find the roots and scan them
	Mark   float64 `json:"mark_ms"`   // of Scan: scan what they reach, classify leaks
	Report float64 `json:"report_ms"` // fingerprint, group
}

// Options tune the report.
type Options struct {
	// Demangle turns a vtable symbol (_ZTV...) into a type name.
	Demangle func(sym string) (string, bool)
	// DemangleSymbol demangles any C++ symbol (_Z...).
	DemangleSymbol func(sym string) (string, bool)
	// MaxStrings is how many example strings a group keeps (default 3).
	MaxStrings int
}

// fingerprintBytes is how much of a chunk's start shapes its fingerprint.
const fingerprintBytes = 64

// Build groups the leaked chunks of a scan.
func Build(s addrspace.Space, h *heapwalk.Heap, res *scan.Result, opt Options) *Report {
	if opt.MaxStrings == 0 {
		opt.MaxStrings = 3
	}
	info := s.Info()
	rep := &Report{Version: 1,
		Target:   Target{PID: info.PID, Core: info.Core, Executable: info.Executable, Args: info.Args, Glibc: h.Glibc},
		Findings: h.Findings, Groups: []Group{}}
	rep.Warnings = append(append(append([]string{}, s.Warnings()...), h.Warnings...), res.Warnings...)
	c := &h.Chunks
	rep.Stats = Stats{Arenas: len(h.Arenas), Threads: len(s.Threads()), Chunks: c.Len(),
		ScannedBytes: res.ScannedBytes, Heuristic: res.Heuristic}
	var lo, hi uint64
	if c.Len() > 0 {
		lo, hi = uint64(c.Addr(0)), uint64(c.Addr(c.Len()-1))+c.Size(c.Len()-1)
	}
	inHeap := func(v uint64) bool { return c.Containing(addrspace.Addr(v)) >= 0 }
	sp := newSpace(s, inHeap, lo, hi, opt.Demangle)
	sp.demangleSym = opt.DemangleSymbol

	type key struct {
		kind scan.Verdict
		fp   uint64
	}
	groups := map[key]*Group{}
	var order []key
	rep.Summary.InUse = Count{res.InUse.Chunks, res.InUse.Bytes}
	rep.Summary.Reachable = Count{res.Reachable.Chunks, res.Reachable.Bytes}
	// The chunks in use that are not reachable: the scan totalled the
	// others.
	for i, v := range res.Verdicts {
		if v == scan.Reachable || v == scan.NotUser {
			continue
		}
		usable := h.Usable(i)
		switch v {
		case scan.Possible:
			rep.Summary.Possible.add(usable)
		case scan.Definite:
			rep.Summary.Definite.add(usable)
		case scan.Indirect:
			rep.Summary.Indirect.add(usable)
		}
		head := make([]byte, min(usable, 256))
		if _, err := s.ReadAt(head, c.User(i)); err != nil {
			head = nil
		}
		text := sp.maskPointers(head) // strings are never read out of pointers
		fp, typ := fingerprint(sp, usable, head, text)
		k := key{v, fp}
		g := groups[k]
		if g == nil {
			g = &Group{Fingerprint: fmt.Sprintf("%016x", fp), Kind: v.String(), Size: usable, Type: typ,
				VtableModule: vtableModule(sp, head), Symbols: pointedSymbols(sp, head, typ),
				Strings: []string{}, Example: head[:min(len(head), 64)], ExampleAddr: c.User(i).String()}
			groups[k] = g
			order = append(order, k)
		}
		g.Count++
		g.Bytes += usable
		g.Addresses = append(g.Addresses, c.User(i).String())
		if len(g.Strings) < opt.MaxStrings {
			if str := firstString(text); str != "" && !contains(g.Strings, str) {
				g.Strings = append(g.Strings, str)
			}
		}
	}
	for _, k := range order {
		g := groups[k]
		g.Hexdump = hexdump(g.Example, g.ExampleAddr)
		rep.Groups = append(rep.Groups, *g)
	}
	SortGroups(rep.Groups)
	for mod, why := range sp.noTypes {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("no symbols for %s (%s): C++ type names from its vtables are missing", mod, why))
	}
	return rep
}

// SortGroups orders leak groups the way reports list them: biggest first,
// then definite before indirect before possible, then by fingerprint.
func SortGroups(groups []Group) {
	sort.SliceStable(groups, func(i, j int) bool {
		a, b := &groups[i], &groups[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		if a.Kind != b.Kind {
			return kindRank(a.Kind) < kindRank(b.Kind)
		}
		return a.Fingerprint < b.Fingerprint
	})
}

func kindRank(k string) int {
	switch k {
	case "definite":
		return 0
	case "indirect":
		return 1
	}
	return 2
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// fingerprint hashes what stays the same for one kind of object across
// runs and address-space layouts: the usable size, the C++ type, where in
// the first words pointers into modules sit (vtables, function tables,
// string literals, by symbol), and the first string with digit runs masked.
// Other words (heap pointers, NULLs, numbers, text) vary between objects
// of one kind, so they only count as data.
func fingerprint(sp *space, usable uint64, head, text []byte) (uint64, string) {
	h := fnv.New64a()
	fmt.Fprintf(h, "size=%d;", usable)
	typ := ""
	if len(head) >= 8 {
		typ, _ = sp.typeOf(binary.LittleEndian.Uint64(head))
	}
	fmt.Fprintf(h, "type=%s;", typ)
	for off := 0; off+8 <= len(head) && off < fingerprintBytes; off += 8 {
		w := binary.LittleEndian.Uint64(head[off:])
		if sp.classify(w) != wModule {
			continue
		}
		mod, sym, symOff := sp.symbol(w)
		if sym != "" {
			fmt.Fprintf(h, "@%d(%s:%s+%d)", off, mod, sym, symOff)
		} else {
			fmt.Fprintf(h, "@%d(%s+%d)", off, mod, symOff)
		}
	}
	str := maskDigits(firstString(text[:min(len(text), fingerprintBytes)]))
	fmt.Fprintf(h, ";str=%s", str[:min(len(str), 24)])
	return h.Sum64(), typ
}

// firstString returns the first run of at least 4 printable characters in
// b (capped at 80), or "".
func firstString(b []byte) string {
	for i := 0; i < len(b); {
		n := 0
		for i+n < len(b) && n < 80 && (b[i+n] >= 0x20 && b[i+n] < 0x7f || b[i+n] == '\t') {
			n++
		}
		if n >= 4 {
			return string(b[i : i+n])
		}
		i += n + 1
	}
	return ""
}

// maskDigits collapses every run of digits to '#', so that "req-17" and
// "req-1024" share a fingerprint.
func maskDigits(s string) string {
	var b strings.Builder
	prevDigit := false
	for _, r := range s {
		d := r >= '0' && r <= '9'
		if d && prevDigit {
			continue
		}
		if d {
			b.WriteByte('#')
		} else {
			b.WriteRune(r)
		}
		prevDigit = d
	}
	return b.String()
}

// hexdump formats b like `hexdump -C`, 16 bytes a line.
func hexdump(b []byte, _ string) []string {
	var out []string
	for off := 0; off < len(b); off += 16 {
		line := b[off:min(off+16, len(b))]
		var hx, asc strings.Builder
		for i := 0; i < 16; i++ {
			if i == 8 {
				hx.WriteByte(' ')
			}
			if i < len(line) {
				fmt.Fprintf(&hx, "%02x ", line[i])
				c := line[i]
				if c < 0x20 || c >= 0x7f {
					c = '.'
				}
				asc.WriteByte(c)
			} else {
				hx.WriteString("   ")
			}
		}
		out = append(out, fmt.Sprintf("%04x  %s |%s|", off, hx.String(), asc.String()))
	}
	return out
}

func vtableModule(sp *space, head []byte) string {
	if len(head) < 8 {
		return ""
	}
	_, mod := sp.typeOf(binary.LittleEndian.Uint64(head))
	return mod
}

// pointedSymbols names the module symbols that the first words of a chunk
// point to (skipping the vtable, which the type already names).
func pointedSymbols(sp *space, head []byte, typ string) []string {
	var out []string
	for off := 0; off+8 <= len(head) && off < fingerprintBytes; off += 8 {
		w := binary.LittleEndian.Uint64(head[off:])
		if (off == 0 && typ != "") || sp.classify(w) != wModule {
			continue
		}
		mod, sym, symOff := sp.symbol(w)
		if sym == "" {
			continue
		}
		name := sym
		if sp.demangleSym != nil {
			if d, ok := sp.demangleSym(sym); ok {
				name = d
			}
		}
		if symOff != 0 {
			name = fmt.Sprintf("%s+%d", name, symOff)
		}
		if n := name + " (" + mod + ")"; !contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
