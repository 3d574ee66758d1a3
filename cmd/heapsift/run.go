package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/heapsift/heapsift/ptrace"
	"github.com/spf13/pflag"
)

const runHelp = `Usage: heapsift run [flags] -- PROGRAM [ARGS...]

Run PROGRAM at full speed, stop it when it exits (while its memory is still
intact), report its leaks, then let it finish. Signals reach the program as
usual. heapsift exits with the program's own status, or with
--error-exitcode (default 3) when leaks were found.

Flags:
`

func (e *env) run(args []string) error {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, runHelp+fs.FlagUsages()) }
	var a analysisFlags
	a.register(fs)
	fs.SetInterspersed(false)
	if err := fs.Parse(args); err != nil {
		if err == pflag.ErrHelp {
			return nil
		}
		return usageErr("%v", err)
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
	if st.Signal != 0 {
		fmt.Fprintf(e.stderr, "heapsift: %s was %v\n", argv[0], st)
	}
	if len(failing) > 0 {
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
