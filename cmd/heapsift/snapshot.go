package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/heapsift/heapsift/ptrace"
	"github.com/spf13/pflag"
)

// snapshotFlag is --snapshot=direct|fork, for commands that take a PID.
type snapshotFlag struct {
	mode ptrace.SnapshotMode
	// fs is the command's flag set, where -v is looked up once parsed.
	fs *pflag.FlagSet
}

func (f *snapshotFlag) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.Var(f, "snapshot", "for a PID: direct (stop the process for the whole analysis) or fork (stop it only while it forks a frozen copy, and analyze the copy)")
}

func (f *snapshotFlag) String() string { return f.mode.String() }
func (f *snapshotFlag) Type() string   { return "direct|fork" }

func (f *snapshotFlag) Set(s string) error {
	m, err := ptrace.ParseSnapshotMode(s)
	if err != nil {
		return err
	}
	f.mode = m
	return nil
}

// verbose reports whether the command's -v flag is set.
func (f *snapshotFlag) verbose() bool {
	if f.fs == nil {
		return false
	}
	v := f.fs.Lookup("verbose")
	return v != nil && v.Value.String() == "true"
}

// noteSnapshot says, with -v, how long a fork snapshot stopped the
// target, or why it fell back to reading the stopped process.
func (e *env) noteSnapshot(p *ptrace.Process, f *snapshotFlag) {
	if f.mode != ptrace.SnapshotFork || !f.verbose() {
		return
	}
	if p.Snapshot() == ptrace.SnapshotFork {
		fmt.Fprintf(e.stderr, "heapsift: fork snapshot: target paused %s (direct read would pause it for the whole analysis)\n", millis(p.Pause()))
		return
	}
	for _, w := range p.Warnings() {
		if strings.HasPrefix(w, "fork snapshot") {
			fmt.Fprintf(e.stderr, "heapsift: warning: %s\n", w)
		}
	}
}

// millis formats d as milliseconds: "3.2 ms".
func millis(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}
