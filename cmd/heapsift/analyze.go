package main

import (
	"fmt"
	"io"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/demangle"

	"github.com/heapsift/heapsift/report"
	"github.com/heapsift/heapsift/scan"
	"github.com/spf13/pflag"
)

// analysisFlags are the flags shared by every command that analyzes.
type analysisFlags struct {
	json         bool
	noDebugSyms  bool
	debugDirs    []string
	noHeuristics bool
	verbose      bool
	all          bool
}

func (a *analysisFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&a.json, "json", false, "write the report as JSON on stdout")
	fs.BoolVar(&a.noDebugSyms, "no-debug-symbols", false, "ignore separate debug files: find glibc's structures without symbols (also HEAPSIFT_NO_DEBUG_SYMBOLS=1)")
	fs.StringSliceVar(&a.debugDirs, "debug-file-directory", nil, "where to look for debug files by build-id (default /usr/lib/debug)")
	fs.BoolVar(&a.noHeuristics, "no-heuristics", false, "count every interior pointer as possible, even new[] arrays, secondary C++ bases and glibc's DTV")
	fs.BoolVarP(&a.verbose, "verbose", "v", false, "say how glibc's structures were found, and time each phase")
	fs.BoolVar(&a.all, "all", false, "show every leak group in the text report (default: the 20 largest)")
}

// analyze walks the heap of a frozen space, scans it and builds a report.
func (e *env) analyze(s addrspace.Space, a *analysisFlags) (*report.Report, error) {
	t0 := time.Now()
	h, err := heapwalk.Walk(s, heapwalk.Options{
		NoDebugSymbols: a.noDebugSyms || e.getenv("HEAPSIFT_NO_DEBUG_SYMBOLS") == "1",
		DebugDirs:      a.debugDirs,
	})
	if err != nil {
		return nil, err
	}
	t1 := time.Now()
	res := scan.Run(s, h, scan.Options{NoHeuristics: a.noHeuristics})
	t2 := time.Now()
	rep := report.Build(s, h, res, report.Options{Demangle: demangle.TypeName})
	if a.verbose {
		fmt.Fprintf(e.stderr, "heapsift: heap walk %v (%d chunks), scan %v (%d MiB), report %v\n",
			t1.Sub(t0).Round(time.Microsecond), h.Chunks.Len(), t2.Sub(t1).Round(time.Microsecond),
			res.ScannedBytes>>20, time.Since(t2).Round(time.Microsecond))
	}
	return rep, nil
}

// write prints the report in the chosen format.
func (e *env) write(w io.Writer, rep *report.Report, a *analysisFlags) error {
	if a.json {
		return report.WriteJSON(w, rep)
	}
	max := 20
	if a.all {
		max = 0
	}
	return report.WriteText(w, rep, report.TextOptions{MaxGroups: max, Verbose: a.verbose})
}

// leaked reports whether the report has any definite, indirect or possible
// leak of the given kinds.
func leaked(rep *report.Report) bool {
	return rep.Summary.Definite.Chunks+rep.Summary.Indirect.Chunks > 0
}
