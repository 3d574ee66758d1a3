package main

import (
	"fmt"
	"os"
	"strconv"

	"github.com/heapsift/heapsift/corefile"
)

const dumpHelp = `Usage: heapsift dump [flags] PID -o FILE

Freeze process PID and write its memory, threads and mapped-file list as
an ELF core file, then let it go. The core can be analyzed later, on this
or another machine, with 'heapsift leaks FILE', and opened by gdb. The
process is stopped only while its memory is copied.

Flags:
`

func (e *env) dump(args []string) error {
	fs := e.flagSet("dump", dumpHelp)
	out := fs.StringP("output", "o", "", "the core file to write")
	var t targetFlags
	t.snapshot.register(fs)
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		fs.Usage()
		return usageErr("dump takes a PID and -o FILE")
	}
	if _, err := strconv.Atoi(fs.Arg(0)); err != nil {
		return usageErr("%q is not a process id", fs.Arg(0))
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	s, release, err := e.open(fs.Arg(0), &t)
	if err != nil {
		f.Close()
		os.Remove(*out)
		return err
	}
	auxv, _ := os.ReadFile("/proc/" + fs.Arg(0) + "/auxv")
	warns, werr := corefile.Write(f, s, auxv)
	if werr == nil {
		werr = gone(s) // the core would lack whatever was not written by then
	}
	release()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(*out)
		return fmt.Errorf("writing %s: %w", *out, werr)
	}
	for _, w := range warns {
		fmt.Fprintf(e.stderr, "heapsift: warning: %s\n", w)
	}
	st, _ := os.Stat(*out)
	fmt.Fprintf(e.stderr, "heapsift: wrote %s (%d MiB) of process %s\n", *out, st.Size()>>20, fs.Arg(0))
	return nil
}
