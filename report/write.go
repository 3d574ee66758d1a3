package report

import (
	"encoding/json"
	"fmt"
	"github.com/heapsift/heapsift/internal/units"
	"io"
	"strconv"
	"strings"
)

// WriteJSON writes the report as one JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	return enc.Encode(r)
}

// TextOptions tune the text report.
type TextOptions struct {
	MaxGroups    int // groups shown in full (0: all)
	MaxAddresses int // addresses listed per group (default 4)
	Verbose      bool
	// ShowSuppressed lists the groups that suppressions hid.
	ShowSuppressed bool
}

// WriteText writes the report for people.
func WriteText(w io.Writer, r *Report, opt TextOptions) error {
	if opt.MaxAddresses == 0 {
		opt.MaxAddresses = 4
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	t := r.Target
	what := fmt.Sprintf("pid %d", t.PID)
	if t.Core != "" {
		what = "core " + t.Core
	}
	if t.Executable != "" {
		what += " (" + t.Executable + ")"
	}
	p("heapsift: %s, glibc %s, %d arena(s), %d thread(s), %s in %s chunks in use\n",
		what, t.Glibc, r.Stats.Arenas, r.Stats.Threads, units.Size(r.Summary.InUse.Bytes, "bytes"), units.Count(r.Summary.InUse.Chunks))
	if opt.Verbose {
		for _, f := range r.Findings {
			p("  found %s at %v: %s\n", f.What, f.Addr, strings.Join(f.How, "; "))
		}
	}
	for _, wmsg := range r.Warnings {
		p("warning: %s\n", wmsg)
	}
	p("\n")
	writeGroups(p, r.Groups, opt)
	if opt.ShowSuppressed && len(r.Suppressed) > 0 {
		p("SUPPRESSED:\n\n")
		writeGroups(p, r.Suppressed, opt)
	}
	s := r.Summary
	p("LEAK SUMMARY:\n")
	p("   definitely lost: %s bytes in %s blocks\n", units.Count(s.Definite.Bytes), units.Count(s.Definite.Chunks))
	p("   indirectly lost: %s bytes in %s blocks\n", units.Count(s.Indirect.Bytes), units.Count(s.Indirect.Chunks))
	p("     possibly lost: %s bytes in %s blocks\n", units.Count(s.Possible.Bytes), units.Count(s.Possible.Chunks))
	p("   still reachable: %s bytes in %s blocks\n", units.Count(s.Reachable.Bytes), units.Count(s.Reachable.Chunks))
	if n := len(r.Suppressed); n > 0 {
		blocks := 0
		for _, g := range r.Suppressed {
			blocks += g.Count
		}
		p("        suppressed: %s blocks in %d group(s)\n", units.Count(uint64(blocks)), n)
	}
	return nil
}

func writeGroups(p func(string, ...any), groups []Group, opt TextOptions) {
	shown := 0
	for _, g := range groups {
		if opt.MaxGroups > 0 && shown >= opt.MaxGroups {
			p("... %d more group(s); use --json or --all for every one\n\n", len(groups)-shown)
			break
		}
		shown++
		label := map[string]string{"definite": "definitely lost", "indirect": "indirectly lost", "possible": "possibly lost"}[g.Kind]
		p("%s: %s in %s block(s) of %d bytes", label, units.Size(g.Bytes, "bytes"), units.Count(uint64(g.Count)), g.Size)
		if g.Type != "" {
			p(", type %s", g.Type)
		}
		p("  [%s]", g.Fingerprint)
		switch {
		case g.SuppressedBy != "":
			p("  suppressed by %s", g.SuppressedBy)
		case g.Baseline != "":
			p("  %s", g.Baseline)
		}
		p("\n")
		if len(g.Strings) > 0 {
			qs := make([]string, len(g.Strings))
			for i, s := range g.Strings {
				qs[i] = strconv.Quote(s)
			}
			p("    strings: %s\n", strings.Join(qs, ", "))
		}
		if len(g.Symbols) > 0 {
			p("    points to: %s\n", strings.Join(g.Symbols, ", "))
		}
		addrs := g.Addresses
		more := ""
		if len(addrs) > opt.MaxAddresses {
			more = fmt.Sprintf(", ... (%d more)", len(addrs)-opt.MaxAddresses)
			addrs = addrs[:opt.MaxAddresses]
		}
		p("    at %s%s\n", strings.Join(addrs, ", "), more)
		for _, l := range g.Hexdump {
			p("    %s\n", l)
		}
		p("\n")
	}
}
