package stats

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/heapsift/heapsift/internal/units"
	"io"
	"sort"
)

// WriteJSON writes v (Stats or AddressSpace) as one indented JSON document.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("stats: writing JSON: %w", err)
	}
	return nil
}

// header describes the target in one line.
func (t *Target) header(extra string) string {
	what := fmt.Sprintf("pid %d", t.PID)
	if t.Core != "" {
		what = "core " + t.Core
	}
	if t.Executable != "" {
		what += " (" + t.Executable + ")"
	}
	return fmt.Sprintf("heapsift: %s, glibc %s, %d thread(s)%s\n", what, t.Glibc, t.Threads, extra)
}

// WriteText writes the per-arena and total tables for people.
func WriteText(w io.Writer, st *Stats) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("%s", st.Target.header(fmt.Sprintf(", %d arena(s)", len(st.Arenas))))
	for _, msg := range st.Warnings {
		p("warning: %s\n", msg)
	}
	for i := range st.Arenas {
		a := &st.Arenas[i]
		kind := "thread arena"
		if a.Main {
			kind = "main arena"
		}
		p("\n%s %v: %s attached, %s\n", kind, a.Address, plural(a.Threads, "thread"), heapsText(a))
		writeFigures(p, &a.Figures, a.Main)
	}
	p("\nmmapped chunks: %s, %s\n", units.Count(st.Mmapped.Chunks), sizeText(st.Mmapped.Bytes))
	p("\ntotal: %s, %s attached\n", plural(uint64(st.Total.Arenas), "arena"), plural(st.Total.Threads, "thread"))
	writeFigures(p, &st.Total.Figures, true)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

func heapsText(a *Arena) string {
	if a.Main {
		if len(a.Heaps) == 0 {
			return "no heap"
		}
		return fmt.Sprintf("[heap] %v-%v", a.Heaps[0].Start, a.Heaps[0].End)
	}
	return plural(uint64(len(a.Heaps)), "heap")
}

// writeFigures writes one arena's (or the total's) table.
func writeFigures(p func(string, ...any), f *Figures, topTrims bool) {
	row := func(label string, c *Count, note string) {
		p("  %-14s %12s %15s  %10s%s\n", label, units.Count(c.Chunks), units.Count(c.Bytes), sizeText(c.Bytes), note)
	}
	bytesRow := func(label string, n uint64, note string) {
		p("  %-14s %12s %15s  %10s%s\n", label, "", units.Count(n), sizeText(n), note)
	}
	p("  %-14s %12s %15s\n", "", "chunks", "bytes")
	bytesRow("system_mem", f.SystemMem, "")
	row("in use", &f.InUse, "")
	row("free", &f.Free.Count, fmt.Sprintf("  largest %s, fragmentation %.1f%%", units.Count(f.LargestFree), 100*f.Fragmentation))
	fr := &f.Free
	for _, k := range []struct {
		label string
		c     *Count
	}{{"tcache", &fr.Tcache}, {"fastbins", &fr.Fastbins}, {"unsorted", &fr.Unsorted},
		{"small bins", &fr.Smallbins}, {"large bins", &fr.Largebins}, {"top", &fr.Top}, {"unbinned", &fr.Unbinned}} {
		if k.label == "unbinned" && k.c.Chunks == 0 {
			continue
		}
		row("  "+k.label, k.c, "")
	}
	row("overhead", &f.Overhead, "  (tcache structs, fenceposts, heap headers)")
	note := ""
	if topTrims {
		note = fmt.Sprintf("  (%s from top)", units.Count(f.TrimmableTop))
	}
	bytesRow("trimmable", f.Trimmable, note)
}

// WriteSizesText writes the size histograms for people.
func WriteSizesText(w io.Writer, t *Target, s *Sizes) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("%s", t.header(""))
	for _, h := range []struct {
		what string
		h    *Histogram
	}{{"in-use chunks", &s.InUse}, {"free chunks (top excluded)", &s.Free}} {
		shown := ""
		if len(h.h.Buckets) < h.h.Sizes {
			shown = fmt.Sprintf(", the %d biggest shown", len(h.h.Buckets))
		}
		p("\n%s by chunk size: %s in %s chunks, %s size(s)%s\n", h.what, sizeText(h.h.Bytes),
			units.Count(h.h.Chunks), units.Count(uint64(h.h.Sizes)), shown)
		p("  %12s %12s %15s %7s\n", "chunk size", "count", "bytes", "%")
		for _, b := range h.h.Buckets {
			p("  %12s %12s %15s %6.1f%%\n", units.Count(b.Size), units.Count(b.Chunks), units.Count(b.Bytes), b.Percent)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

func plural(n uint64, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return units.Count(n) + " " + what + "s"
}

// WriteMapsText writes the address-space summary for people.
func WriteMapsText(w io.Writer, as *AddressSpace) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("%s", as.Target.header(""))
	for _, msg := range as.Warnings {
		p("warning: %s\n", msg)
	}
	live := as.Resident != nil
	usage := func(label string, u *Usage) {
		p("%-44s %8s %11s", label, units.Count(uint64(u.Mappings)), sizeText(u.Virtual))
		if live {
			p(" %11s %11s", sizeText(*u.Resident), sizeText(*u.Swapped))
		}
		p("\n")
	}
	p("\n%-44s %8s %11s", "", "mappings", "virtual")
	if live {
		p(" %11s %11s", "resident", "swapped")
	}
	p("\n")
	for i := range as.Classes {
		c := &as.Classes[i]
		usage(c.Class, &c.Usage)
		for j := range c.Items {
			usage("    "+shorten(c.Items[j].Name, 40), &c.Items[j].Usage)
		}
	}
	usage("total", &as.Usage)
	if as.FDs != nil {
		p("\nopen file descriptors: %d", as.FDs.Total)
		kinds := make([]string, 0, len(as.FDs.Kinds))
		for k := range as.FDs.Kinds {
			kinds = append(kinds, k)
		}
		sort.Slice(kinds, func(i, j int) bool {
			a, b := as.FDs.Kinds[kinds[i]], as.FDs.Kinds[kinds[j]]
			if a != b {
				return a > b
			}
			return kinds[i] < kinds[j]
		})
		for i, k := range kinds {
			sep := ", "
			if i == 0 {
				sep = " ("
			}
			p("%s%s %d", sep, k, as.FDs.Kinds[k])
		}
		if len(kinds) > 0 {
			p(")")
		}
		p("\n")
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("stats: %w", err)
	}
	return nil
}

// shorten keeps the end of a long name, where a path's file name is.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n+3:]
}

// sizeText formats a byte count for people.
func sizeText(n uint64) string { return units.Size(n, "B") }
