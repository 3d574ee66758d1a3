// Command heapsift finds leaked memory in Linux x86-64 programs that use
// glibc malloc, without recompiling or restarting them.
//
//	heapsift leaks PID            attach, freeze, analyze, detach; report leaks
//	heapsift leaks --json PID     the same as JSON
//	heapsift run -- ./prog args   run prog, stop it at exit, report its leaks
//	heapsift dump PID -o FILE     write a core file of a running process
//	heapsift demo                 build and analyze the bundled example leaker
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"

	"github.com/spf13/pflag"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
	exitLeaks   = 3
)

// exitError carries an exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

// env is the command's outside world, injectable for in-process tests.
type env struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	environ        func() []string // the environment of programs we run
	stdio          [3]*os.File     // the standard files of programs we run
}

const usage = `heapsift finds leaked glibc malloc memory in Linux x86-64 processes.

Usage:
  heapsift leaks [flags] PID       attach to a running process and report its leaks
  heapsift run [flags] -- PROG...  run PROG, stop it at exit and report its leaks
  heapsift dump PID -o FILE        write a core file of a running process
  heapsift stats [flags] PID|CORE  heap statistics: use, free space, fragmentation, trimmable
  heapsift maps [flags] PID|CORE   the address space by use: heaps, stacks, modules, shared memory
  heapsift demo                    build and analyze the bundled example leaker
  heapsift help COMMAND            show a command's flags

Exit status: 0 nothing leaked, 3 leaks found, 2 usage error, 1 failure.
(run: the program's own status when nothing leaked.)
`

func main() {
	// The analysis keeps a few large tables, all free of Go pointers (so
	// cheap to collect), and little else: collecting at a quarter of
	// growth instead of doubling keeps the peak near the live size.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(25)
	}
	e := &env{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, environ: os.Environ,
		stdio: [3]*os.File{os.Stdin, os.Stdout, os.Stderr}}
	os.Exit(e.main(os.Args[1:]))
}

func (e *env) main(args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return exitUsage
	}
	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "leaks":
		err = e.leaks(rest)
	case "run":
		err = e.run(rest)
	case "demo":
		err = e.demo(rest)
	case "dump":
		err = e.dump(rest)
	case "stats":
		err = e.stats(rest)
	case "maps":
		err = e.maps(rest)
	case "help", "-h", "--help":
		if len(rest) > 0 {
			return e.main([]string{rest[0], "--help"})
		}
		fmt.Fprint(e.stdout, usage)
		return exitOK
	default:
		err = usageErr("unknown command %q (try heapsift help)", cmd)
	}
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(e.stderr, "heapsift: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(e.stderr, "heapsift: %v\n", err)
	return exitFailure
}

// flagSet makes a command's flag set; its usage prints help, then the flags.
func (e *env) flagSet(name, help string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() { fmt.Fprint(e.stderr, help+fs.FlagUsages()) }
	return fs
}

// parseFlags parses a command's arguments. helped reports --help, after
// which the command just returns; a bad flag is a usage error.
func parseFlags(fs *pflag.FlagSet, args []string) (helped bool, err error) {
	switch err := fs.Parse(args); {
	case err == pflag.ErrHelp:
		return true, nil
	case err != nil:
		return false, usageErr("%v", err)
	}
	return false, nil
}
