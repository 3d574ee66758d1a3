package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/scan"
	"github.com/heapsift/heapsift/stats"
	"github.com/spf13/pflag"
)

const statsHelp = `Usage: heapsift stats [flags] PID|CORE

Heap statistics, as glibc counts them: for each arena and in total, the
memory the arena got from the system (system_mem), the chunks in use, the
free chunks by where they sit (tcache, fastbins, unsorted, small and large
bins, top), the largest free chunk, external fragmentation (1 - largest
free / free) and the bytes malloc_trim(0) would give back; and the mmapped
chunks. Bytes are chunk sizes, header included.

--sizes prints the chunk-size histograms instead (in use, and free), the
biggest total first. --svg FILE also draws the heap map: each arena's
memory as strips, chunks colored by state, leaked ones in red.

Flags:
`

// statsFlags are the flags of the stats command.
type statsFlags struct {
	analysisFlags
	sizes bool
	top   int
	svg   string
}

func (f *statsFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&f.json, "json", false, "write the statistics as JSON on stdout")
	fs.BoolVar(&f.sizes, "sizes", false, "chunk-size histograms (in use and free) instead of the arena tables")
	fs.IntVar(&f.top, "top", 20, "with --sizes: the number of sizes to show per histogram (0: all)")
	fs.StringVar(&f.svg, "svg", "", "also draw the heap map as an SVG `FILE`")
	registerWalkFlags(fs, &f.analysisFlags)
	fs.BoolVar(&f.noHeuristics, "no-heuristics", false, "with --svg: count every interior pointer as possible (see leaks)")
}

// registerWalkFlags registers the flags that tune the heap walk.
func registerWalkFlags(fs *pflag.FlagSet, a *analysisFlags) {
	fs.BoolVar(&a.noDebugSyms, "no-debug-symbols", false, "ignore separate debug files: find glibc's structures without symbols (also HEAPSIFT_NO_DEBUG_SYMBOLS=1)")
	fs.StringSliceVar(&a.debugDirs, "debug-file-directory", nil, "where to look for debug files by build-id (default /usr/lib/debug)")
	fs.BoolVarP(&a.verbose, "verbose", "v", false, "say how glibc's structures were found, and time each phase")
}

func (e *env) stats(args []string) error {
	fs := e.flagSet("stats", statsHelp)
	var f statsFlags
	var t targetFlags
	f.register(fs)
	t.register(fs)
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageErr("stats takes one PID or core file")
	}
	if f.top < 0 {
		return usageErr("--top must not be negative")
	}
	s, release, err := e.open(fs.Arg(0), &t)
	if err != nil {
		return err
	}
	defer release()
	h, err := e.walkHeap(s, &f.analysisFlags)
	if err != nil {
		return err
	}
	st := stats.Compute(s, h)
	if f.sizes {
		st.Sizes = stats.SizeHistograms(h)
		st.Sizes.Truncate(f.top)
	}
	var verdicts []scan.Verdict
	if f.svg != "" {
		t0 := time.Now()
		verdicts = scan.Run(s, h, scan.Options{NoHeuristics: f.noHeuristics}).Verdicts
		if f.verbose {
			fmt.Fprintf(e.stderr, "heapsift: scan %v\n", time.Since(t0).Round(time.Microsecond))
		}
	}
	if err := gone(s); err != nil {
		return err
	}
	release() // let a live target go before writing anything
	if f.svg != "" {
		var buf bytes.Buffer
		if err := stats.WriteSVG(&buf, st, h, verdicts); err != nil {
			return err
		}
		if err := os.WriteFile(f.svg, buf.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing the heap map: %w", err)
		}
	}
	switch {
	case f.json:
		return stats.WriteJSON(e.stdout, st)
	case f.sizes:
		return stats.WriteSizesText(e.stdout, &st.Target, st.Sizes)
	}
	return stats.WriteText(e.stdout, st)
}

// walkHeap walks the heap of a frozen space with the walk flags.
func (e *env) walkHeap(s addrspace.Space, a *analysisFlags) (*heapwalk.Heap, error) {
	t0 := time.Now()
	h, err := heapwalk.Walk(s, heapwalk.Options{
		NoDebugSymbols: a.noDebugSyms || e.getenv("HEAPSIFT_NO_DEBUG_SYMBOLS") == "1",
		DebugDirs:      a.debugDirs,
	})
	if err != nil {
		return nil, err
	}
	if a.verbose {
		for _, f := range h.Findings {
			fmt.Fprintf(e.stderr, "heapsift: found %s at %v: %s\n", f.What, f.Addr, strings.Join(f.How, "; "))
		}
		fmt.Fprintf(e.stderr, "heapsift: heap walk %v (%d chunks)\n", time.Since(t0).Round(time.Microsecond), h.Chunks.Len())
	}
	return h, nil
}
