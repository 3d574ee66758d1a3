package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/ptrace"
	"github.com/heapsift/heapsift/report"
)

const runHelp = `Usage: heapsift run [flags] -- PROGRAM [ARGS...]

Run PROGRAM at full speed, stop it when it exits (while its memory is still
intact), report its leaks, then let it finish. Signals reach the program as
usual. heapsift exits with the program's own status, or with
--error-exitcode (default 3) when leaks were found.

With --follow-forks, every process that PROGRAM starts (fork, vfork, clone,
through any exec, also after its parent exited) is stopped at its own exit
and reported in turn, while the others run on; processes without glibc
malloc (Go programs, musl, other allocators) are skipped with one line. heapsift
waits until every process of the tree is gone. --json then prints a JSON
array of reports, and --junit holds one test case per analyzed process.

Flags:
`

func (e *env) run(args []string) error {
	fs := e.flagSet("run", runHelp)
	var a analysisFlags
	a.register(fs)
	var follow bool
	fs.BoolVar(&follow, "follow-forks", false, "also report on every process the program starts (fork, vfork, clone, exec), each at its own exit")
	fs.SetInterspersed(false)
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fs.Usage()
		return usageErr("run needs a program: heapsift run -- PROGRAM [ARGS...]")
	}
	// The terminal's Ctrl-C reaches the program too; it decides. heapsift
	// stays to report (and PTRACE_O_EXITKILL ends the program if heapsift
	// itself is killed).
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGQUIT)
	defer signal.Stop(sigs)
	if follow {
		return e.runTree(argv, &a, sigs)
	}

	r, err := ptrace.Start(argv, e.environ(), e.stdio)
	if err != nil {
		return err
	}
	defer r.Close() // on a panic, kill and reap the program; no-op after Finish
	p, err := r.WaitExit(context.Background())
	if err != nil {
		r.Finish()
		return err
	}
	rep, aerr := e.analyze(p, &a)
	st, ferr := r.Finish()
	if aerr != nil {
		return fmt.Errorf("analyzing %s: %w", argv[0], aerr)
	}
	failing, err := e.judge(rep, &a)
	if err != nil {
		return err
	}
	if err := e.write(e.stdout, rep, &a); err != nil {
		return err
	}
	e.summaryLine(rep, failing)
	if ferr != nil {
		return ferr
	}
	return e.programStatus(argv[0], st, len(failing) > 0, &a)
}

// programStatus turns how the program ended into heapsift's exit status.
func (e *env) programStatus(name string, st ptrace.ExitStatus, failed bool, a *analysisFlags) error {
	if st.Signal != 0 {
		fmt.Fprintf(e.stderr, "heapsift: %s was %v\n", name, st)
	}
	if failed {
		return &exitError{code: a.errorExit}
	}
	if st.Signal != 0 {
		return &exitError{code: 128 + int(st.Signal)}
	}
	if st.Code != 0 {
		return &exitError{code: st.Code}
	}
	return nil
}

// treeRun collects what --follow-forks reports, from the goroutines that
// analyze the processes of the tree.
type treeRun struct {
	e    *env
	argv []string
	a    *analysisFlags // as given
	proc analysisFlags  // per process: without the files written once, at the end

	mu        sync.Mutex // guards what follows, and e.stdout and e.stderr
	exited    int        // processes frozen at exit
	analyzed  int
	failing   int // processes with failing leaks
	skipped   int
	errors    int // processes that could not be analyzed
	jsonCount int // reports printed into the JSON array on stdout
	reports   []*report.Report
	cases     []report.JUnitCase
	baseline  map[[2]string]*report.Group // by fingerprint and kind: the largest
}

// runTree is `heapsift run --follow-forks`: every process of the tree is
// frozen at its exit, analyzed (several at once) and let go, while the
// others run on.
//
// Ctrl-C reaches the tree from the terminal, and its processes decide, as
// without --follow-forks; a second one (to heapsift) makes it kill what is
// left of the tree instead of waiting for it.
func (e *env) runTree(argv []string, a *analysisFlags, sigs <-chan os.Signal) error {
	t := &treeRun{e: e, argv: argv, a: a, proc: *a, baseline: map[[2]string]*report.Group{}}
	t.proc.output, t.proc.junit, t.proc.writeBaseline = "", "", ""
	// Check the flags and files (--fail-on, suppressions, baseline)
	// before running anything.
	if _, err := e.judge(&report.Report{}, &t.proc); err != nil {
		return err
	}
	r, err := ptrace.StartTree(argv, e.environ(), e.stdio)
	if err != nil {
		return err
	}
	// On every path out, a process of the tree still there is killed
	// (as PTRACE_O_EXITKILL would if heapsift died); none is left
	// stopped. A no-op once the tree is gone.
	defer r.Close()
	var interrupted atomic.Bool
	watchDone := make(chan struct{})
	defer close(watchDone)
	go func() {
		for n := 1; ; n++ {
			select {
			case <-sigs:
			case <-watchDone:
				return
			}
			t.mu.Lock()
			if n == 1 {
				fmt.Fprintf(e.stderr, "heapsift: interrupt: waiting for the process tree to end; interrupt again to kill what is left of it\n")
				t.mu.Unlock()
				continue
			}
			fmt.Fprintf(e.stderr, "heapsift: interrupt: killing what is left of the process tree\n")
			t.mu.Unlock()
			interrupted.Store(true)
			r.Close()
			return
		}
	}()

	workers := min(max(runtime.GOMAXPROCS(0), 1), 4)
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	var nextErr error
	for {
		p, err := r.Next(context.Background())
		if err == io.EOF {
			break
		}
		if errors.Is(err, ptrace.ErrExited) {
			// Killed while it was being frozen: nothing to analyze.
			t.mu.Lock()
			t.exited++
			t.skipped++
			fmt.Fprintf(e.stderr, "heapsift: %v: skipped\n", err)
			t.mu.Unlock()
			continue
		}
		if err != nil {
			nextErr = err
			break
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t.process(p)
		}()
	}
	wg.Wait()
	if interrupted.Load() {
		if err := t.finish(); err != nil {
			return err
		}
		return &exitError{code: 128 + int(syscall.SIGINT), err: errors.New("interrupted")}
	}
	if nextErr != nil {
		return nextErr
	}
	st, ferr := r.Finish()
	if err := t.finish(); err != nil {
		return err
	}
	if ferr != nil {
		return ferr
	}
	if t.errors > 0 && t.failing == 0 {
		return fmt.Errorf("%d of %d processes could not be analyzed", t.errors, t.exited)
	}
	return e.programStatus(argv[0], st, t.failing > 0, a)
}

// process analyzes one frozen process of the tree and lets it go.
func (t *treeRun) process(p *ptrace.Process) {
	defer p.Detach() // on every path: the process finishes exiting
	info := p.Info()
	name := fmt.Sprintf("pid %d (%s)", info.PID, strings.Join(info.Args, " "))
	if len(info.Args) == 0 {
		name = fmt.Sprintf("pid %d (%s)", info.PID, info.Executable)
	}
	var out, errb bytes.Buffer
	pe := *t.e // the same env, with output of its own until it is printed
	pe.stdout, pe.stderr = &out, &errb

	var rep *report.Report
	var failing []report.Group
	err := func() (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("internal error: %v", r)
			}
		}()
		if other := p.SharesMemoryWith(); other != 0 {
			return errSharesMemory{other}
		}
		if rep, err = pe.analyze(p, &t.proc); err != nil {
			return err
		}
		p.Detach() // the report is built: let it go before printing
		if failing, err = pe.judge(rep, &t.proc); err != nil {
			return err
		}
		if !t.a.json {
			st, _ := p.Exiting()
			fmt.Fprintf(&out, "==%d== Command: %s\n", info.PID, strings.Join(info.Args, " "))
			if st.Signal != 0 {
				fmt.Fprintf(&out, "==%d== Process terminating: %v\n", info.PID, st)
			}
			if err := pe.write(&out, rep, &t.proc); err != nil {
				return err
			}
			out.WriteString("\n")
		}
		pe.summaryLine(rep, failing)
		return nil
	}()

	t.mu.Lock()
	defer t.mu.Unlock()
	t.exited++
	var shares errSharesMemory
	switch {
	case errors.As(err, &shares):
		t.skipped++
		fmt.Fprintf(t.e.stderr, "heapsift: %s: skipped: %v\n", name, err)
	case errors.Is(err, heapwalk.ErrNoGlibc):
		t.skipped++
		fmt.Fprintf(t.e.stderr, "heapsift: %s: skipped: %v\n", name, err)
	case err != nil:
		t.errors++
		t.e.stderr.Write(errb.Bytes())
		fmt.Fprintf(t.e.stderr, "heapsift: %s: analysis failed: %v\n", name, err)
	default:
		t.analyzed++
		if len(failing) > 0 {
			t.failing++
		}
		if t.a.json {
			sep := "[\n"
			if t.jsonCount > 0 {
				sep = ",\n"
			}
			io.WriteString(t.e.stdout, sep)
			report.WriteJSON(t.e.stdout, rep)
			t.jsonCount++
		} else {
			t.e.stdout.Write(out.Bytes())
		}
		t.e.stderr.Write(errb.Bytes())
		t.reports = append(t.reports, rep)
		t.cases = append(t.cases, report.JUnitCase{
			Name: fmt.Sprintf("pid %d: %s", rep.Target.PID, strings.Join(rep.Target.Args, " ")), Failing: failing})
		for _, g := range rep.Groups {
			k := [2]string{g.Fingerprint, g.Kind}
			if b := t.baseline[k]; b == nil {
				g := g
				t.baseline[k] = &g
			} else {
				b.Count, b.Bytes = max(b.Count, g.Count), max(b.Bytes, g.Bytes)
			}
		}
	}
}

// errSharesMemory skips a process whose address space another live
// process still uses.
type errSharesMemory struct{ pid int }

func (e errSharesMemory) Error() string {
	return fmt.Sprintf("shares its memory with pid %d (a vfork or CLONE_VM child that did not exec), which is reported when it exits", e.pid)
}

// finish closes the JSON array, writes the files that cover the whole
// tree and prints the tree's summary line.
func (t *treeRun) finish() error {
	e, a := t.e, t.a
	if a.json {
		if t.jsonCount == 0 {
			io.WriteString(e.stdout, "[")
		}
		io.WriteString(e.stdout, "]\n")
	}
	fmt.Fprintf(e.stderr, "heapsift: %d process(es) exited: %d analyzed, %d with failing leaks, %d skipped, %d not analyzable\n",
		t.exited, t.analyzed, t.failing, t.skipped, t.errors)
	if a.output != "" {
		if err := writeFile(a.output, func(w io.Writer) error { return writeJSONArray(w, t.reports) }); err != nil {
			return err
		}
	}
	if a.junit != "" {
		if err := writeFile(a.junit, func(w io.Writer) error { return report.WriteJUnit(w, t.cases) }); err != nil {
			return err
		}
	}
	if a.writeBaseline != "" {
		// One baseline for the whole tree: each group with the
		// largest count and bytes any one process had, since every
		// process is compared with it on its own.
		merged := &report.Report{Groups: []report.Group{},
			Target: report.Target{Executable: strings.Join(t.argv, " ") + " (every process, --follow-forks)"}}
		for _, g := range t.baseline {
			g.Baseline = ""
			merged.Groups = append(merged.Groups, *g)
		}
		report.SortGroups(merged.Groups)
		if err := writeFile(a.writeBaseline, func(w io.Writer) error { return report.WriteBaseline(w, merged) }); err != nil {
			return err
		}
	}
	return nil
}

// writeJSONArray writes reports as one JSON array.
func writeJSONArray(w io.Writer, reports []*report.Report) error {
	if _, err := io.WriteString(w, "["); err != nil {
		return err
	}
	for i, rep := range reports {
		sep := "\n"
		if i > 0 {
			sep = ",\n"
		}
		if _, err := io.WriteString(w, sep); err != nil {
			return err
		}
		if err := report.WriteJSON(w, rep); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "]\n")
	return err
}
