package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/demangle"

	"github.com/heapsift/heapsift/report"
	"github.com/heapsift/heapsift/scan"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"
)

// analysisFlags are the flags shared by every command that analyzes.
type analysisFlags struct {
	json         bool
	noDebugSyms  bool
	debugDirs    []string
	noHeuristics bool
	verbose      bool
	all          bool

	// CI
	suppressions   []string
	showSuppressed bool
	baseline       string
	tolerance      float64
	writeBaseline  string
	failOn         []string
	errorExit      int
	output         string
	junit          string
}

func (a *analysisFlags) register(fs *pflag.FlagSet) {
	fs.BoolVar(&a.json, "json", false, "write the report as JSON on stdout")
	fs.BoolVar(&a.noDebugSyms, "no-debug-symbols", false, "ignore separate debug files: find glibc's structures without symbols (also HEAPSIFT_NO_DEBUG_SYMBOLS=1)")
	fs.StringSliceVar(&a.debugDirs, "debug-file-directory", nil, "where to look for debug files by build-id (default /usr/lib/debug)")
	fs.BoolVar(&a.noHeuristics, "no-heuristics", false, "count every interior pointer as possible, even new[] arrays, secondary C++ bases and glibc's DTV")
	fs.BoolVarP(&a.verbose, "verbose", "v", false, "say how glibc's structures were found, and time each phase")
	fs.BoolVar(&a.all, "all", false, "show every leak group in the text report (default: the 20 largest)")
	fs.StringSliceVar(&a.suppressions, "suppressions", nil, "hide the leak groups that a rule in FILE matches (see README)")
	fs.BoolVar(&a.showSuppressed, "show-suppressed", false, "also list the groups that suppressions hid")
	fs.StringVar(&a.baseline, "baseline", "", "fail only for leak groups not in this baseline FILE, or grown beyond --baseline-tolerance")
	fs.Float64Var(&a.tolerance, "baseline-tolerance", 0, "growth of a baselined group's count or bytes that is still accepted, in percent")
	fs.StringVar(&a.writeBaseline, "write-baseline", "", "record the current leak groups in FILE as the accepted baseline")
	fs.StringSliceVar(&a.failOn, "fail-on", []string{"definite"}, "leak kinds that fail: definite, indirect, possible")
	fs.IntVar(&a.errorExit, "error-exitcode", exitLeaks, "exit status when leaks that fail were found")
	fs.StringVarP(&a.output, "output", "o", "", "also write the JSON report to FILE")
	fs.StringVar(&a.junit, "junit", "", "also write a JUnit XML report to FILE (one test case per process)")
}

// judge applies suppressions and the baseline, writes the extra report
// files, and returns the groups that fail the run.
func (e *env) judge(rep *report.Report, a *analysisFlags) ([]report.Group, error) {
	kinds := map[string]bool{}
	for _, k := range a.failOn {
		for _, k := range strings.Split(k, ",") {
			switch k = strings.TrimSpace(k); k {
			case "definite", "indirect", "possible":
				kinds[k] = true
			case "":
			default:
				return nil, usageErr("--fail-on takes definite, indirect and possible, not %q", k)
			}
		}
	}
	for _, file := range a.suppressions {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		sup, err := report.ParseSuppressions(f, file)
		f.Close()
		if err != nil {
			return nil, err
		}
		rep.Suppress(sup)
	}
	if a.writeBaseline != "" {
		if err := writeFile(a.writeBaseline, func(w io.Writer) error { return report.WriteBaseline(w, rep) }); err != nil {
			return nil, err
		}
	}
	if a.baseline != "" {
		f, err := os.Open(a.baseline)
		if err != nil {
			return nil, err
		}
		b, err := report.ReadBaseline(f, a.baseline)
		f.Close()
		if err != nil {
			return nil, err
		}
		rep.CompareBaseline(b, a.tolerance/100)
	}
	failing := rep.Failing(kinds)
	if a.output != "" {
		if err := writeFile(a.output, func(w io.Writer) error { return report.WriteJSON(w, rep) }); err != nil {
			return nil, err
		}
	}
	if a.junit != "" {
		name := fmt.Sprintf("pid %d: %s", rep.Target.PID, strings.Join(rep.Target.Args, " "))
		if err := writeFile(a.junit, func(w io.Writer) error {
			return report.WriteJUnit(w, []report.JUnitCase{{Name: name, Failing: failing}})
		}); err != nil {
			return nil, err
		}
	}
	return failing, nil
}

// summaryLine prints valgrind's one-line summary, which CI logs are
// grepped for.
func (e *env) summaryLine(rep *report.Report, failing []report.Group) {
	blocks, sblocks := 0, 0
	for _, g := range failing {
		blocks += g.Count
	}
	for _, g := range rep.Suppressed {
		sblocks += g.Count
	}
	fmt.Fprintf(e.stderr, "==%d== ERROR SUMMARY: %d errors from %d contexts (suppressed: %d from %d)\n",
		rep.Target.PID, blocks, len(failing), sblocks, len(rep.Suppressed))
}

func writeFile(path string, fn func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := fn(f); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// gone returns an error when s is a process that died while it was read:
// whatever was not read by then would count as leaked (nothing points to
// it any more), so there must be no report.
func gone(s addrspace.Space) error {
	if v, ok := s.(addrspace.Vanishing); ok {
		if err := v.Gone(); err != nil {
			return fmt.Errorf("the target died during the analysis; no verdicts: %w", err)
		}
	}
	return nil
}

// analyze walks the heap of a frozen space, scans it and builds a report.
func (e *env) analyze(s addrspace.Space, a *analysisFlags) (*report.Report, error) {
	prog := e.startProgress()
	defer prog.stop()
	t0 := time.Now()
	h, err := heapwalk.Walk(s, heapwalk.Options{
		NoDebugSymbols: a.noDebugSyms || e.getenv("HEAPSIFT_NO_DEBUG_SYMBOLS") == "1",
		DebugDirs:      a.debugDirs,
		Progress:       &prog.walked,
	})
	if err != nil {
		return nil, err
	}
	if err := gone(s); err != nil {
		return nil, err
	}
	t1 := time.Now()
	prog.phase.Store(fmt.Sprintf("scanning %d chunks", h.Chunks.Len()))
	if prog.active {
		var inUse uint64
		for i := 0; i < h.Chunks.Len(); i++ {
			if h.Chunks.State(i) == heapwalk.InUse {
				inUse += h.Usable(i)
			}
		}
		prog.total.Store(max(inUse, 1))
	}
	res := scan.Run(s, h, scan.Options{NoHeuristics: a.noHeuristics, Progress: &prog.scanned})
	if err := gone(s); err != nil {
		return nil, err
	}
	t2 := time.Now()
	rep := report.Build(s, h, res, report.Options{Demangle: demangle.TypeName, DemangleSymbol: demangle.Symbol})
	if err := gone(s); err != nil {
		return nil, err
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	rep.Stats.Timings = &report.Timings{Walk: ms(t1.Sub(t0)), Scan: ms(t2.Sub(t1)), Roots: ms(res.RootsTime), Mark: ms(res.MarkTime),
		Report: ms(time.Since(t2))}
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
	return report.WriteText(w, rep, report.TextOptions{MaxGroups: max, Verbose: a.verbose, ShowSuppressed: a.showSuppressed})
}

// progress shows what a long analysis is doing, on a terminal's stderr:
// the heap read so far during the walk, then a bar of the bytes scanned
// against the bytes of all chunks in use (roots come on top, so the bar
// stops at 100%).
type progress struct {
	active  bool         // shown on a terminal
	phase   atomic.Value // string
	walked  atomic.Uint64
	scanned atomic.Uint64
	total   atomic.Uint64 // bytes in use, once the walk is done
	done    chan struct{}
	wg      sync.WaitGroup
}

// startProgress starts a display that appears after one second, and only
// when stderr is a terminal.
func (e *env) startProgress() *progress {
	p := &progress{done: make(chan struct{})}
	p.phase.Store("walking the heap")
	f, ok := e.stderr.(*os.File)
	if !ok {
		return p
	}
	if _, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS); err != nil {
		return p
	}
	p.active = true
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		start := time.Now()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		shown := false
		for {
			select {
			case <-p.done:
				if shown {
					fmt.Fprint(f, "\r\033[K")
				}
				return
			case <-tick.C:
				if time.Since(start) < time.Second {
					continue
				}
				shown = true
				fmt.Fprintf(f, "\r\033[Kheapsift: %s, %.0fs", p.line(), time.Since(start).Seconds())
			}
		}
	}()
	return p
}

// line describes the current phase and how far it is.
func (p *progress) line() string {
	total := p.total.Load()
	if total == 0 {
		return fmt.Sprintf("%s... %d MiB read", p.phase.Load(), p.walked.Load()>>20)
	}
	done := min(p.scanned.Load(), total)
	const width = 30
	n := int(done * width / total)
	return fmt.Sprintf("%s [%s%s] %3d%% %d/%d MiB", p.phase.Load(), strings.Repeat("#", n), strings.Repeat(".", width-n),
		done*100/total, done>>20, total>>20)
}

func (p *progress) stop() {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	p.wg.Wait()
}
