package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/corefile"
	"github.com/heapsift/heapsift/ptrace"
	"github.com/heapsift/heapsift/report"
	"github.com/spf13/pflag"
)

const leaksHelp = `Usage: heapsift leaks [flags] PID|CORE

Find every glibc malloc chunk that nothing points to any more and report
those leaks, grouped by content, biggest first.

With a PID, heapsift attaches, stops every thread only while it reads
memory, and detaches, leaving the process exactly as it found it. With a
core file (from the kernel or gdb's gcore), it reads the same state from
the file; --sysroot and --solib-search-path find the binaries of a core
made on another machine.

Flags:
`

// targetFlags choose and open a target.
type targetFlags struct {
	sysroot    string
	solibPaths []string
	snapshot   snapshotFlag
}

func (t *targetFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&t.sysroot, "sysroot", "", "for a core: prefix for the paths of its files (like gdb's sysroot)")
	fs.StringSliceVar(&t.solibPaths, "solib-search-path", nil, "for a core: directories to search for its files by name")
	t.snapshot.register(fs)
}

func (e *env) leaks(args []string) error {
	fs := e.flagSet("leaks", leaksHelp)
	var a analysisFlags
	var t targetFlags
	a.register(fs)
	t.register(fs)
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageErr("leaks takes one PID or core file")
	}
	t0 := time.Now()
	s, release, err := e.open(fs.Arg(0), &t)
	if err != nil {
		return err
	}
	defer release()
	freeze := time.Since(t0)
	rep, err := e.analyze(s, &a)
	release() // let a live target go before printing
	if err != nil {
		return err
	}
	rep.Stats.Timings.Freeze = float64(freeze.Microseconds()) / 1000
	if p, ok := s.(*ptrace.Process); ok {
		rep.Stats.Snapshot = p.Snapshot().String()
		rep.Stats.PauseMs = float64(p.Pause().Microseconds()) / 1000
	}
	return e.finish(rep, &a)
}

// finish judges and prints the report; failing leaks become the error
// exit status.
func (e *env) finish(rep *report.Report, a *analysisFlags) error {
	failing, err := e.judge(rep, a)
	if err != nil {
		return err
	}
	if err := e.write(e.stdout, rep, a); err != nil {
		return err
	}
	e.summaryLine(rep, failing)
	if len(failing) > 0 {
		return &exitError{code: a.errorExit}
	}
	return nil
}

// open freezes a live process (a PID) or opens a core file. release lets
// the target go; it is safe to call more than once and from any goroutine,
// and it also runs on Ctrl-C and SIGTERM.
func (e *env) open(target string, t *targetFlags) (addrspace.Space, func(), error) {
	pid, err := strconv.Atoi(target)
	if err != nil || pid <= 0 {
		st, serr := os.Stat(target)
		if serr != nil {
			return nil, nil, usageErr("%q is neither a process id nor a core file", target)
		}
		if st.IsDir() {
			return nil, nil, usageErr("%s is a directory, not a core file", target)
		}
		c, err := corefile.Open(target, corefile.Options{Sysroot: t.sysroot, SolibSearchPath: t.solibPaths})
		if err != nil {
			return nil, nil, err
		}
		return c, func() {}, nil
	}
	mode := t.snapshot.modeFor(pid)
	p, err := ptrace.AttachWith(context.Background(), pid, ptrace.AttachOptions{Snapshot: mode})
	if err != nil {
		return nil, nil, err
	}
	e.noteSnapshot(p, &t.snapshot, mode)
	sigs := make(chan os.Signal, 1)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		select {
		case s := <-sigs:
			p.Detach()
			fmt.Fprintf(e.stderr, "heapsift: %v: detached from %d\n", s, pid)
			os.Exit(130)
		case <-done:
		}
	}()
	var once sync.Once
	return p, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			p.Detach()
		})
	}, nil
}
