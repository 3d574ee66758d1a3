package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/heapsift/heapsift/internal/procfs"
	"github.com/heapsift/heapsift/ptrace"
	"github.com/spf13/pflag"
)

// snapshotFlag is --snapshot=auto|direct|fork, for commands that take a PID.
type snapshotFlag struct {
	mode ptrace.SnapshotMode
	set  bool // direct or fork asked for; otherwise auto
	// fs is the command's flag set, where -v is looked up once parsed.
	fs *pflag.FlagSet
}

func (f *snapshotFlag) register(fs *pflag.FlagSet) {
	f.fs = fs
	fs.Var(f, "snapshot", "for a PID: direct (stop the process for the whole analysis), fork (stop it only while it forks a frozen copy, and analyze the copy), or auto: fork when the process has at least 64 MiB of anonymous memory")
}

func (f *snapshotFlag) String() string {
	if !f.set {
		return "auto"
	}
	return f.mode.String()
}

func (f *snapshotFlag) Type() string { return "auto|direct|fork" }

func (f *snapshotFlag) Set(s string) error {
	if s == "auto" {
		f.set = false
		return nil
	}
	m, err := ptrace.ParseSnapshotMode(s)
	if err != nil {
		return err
	}
	f.mode, f.set = m, true
	return nil
}

// autoForkBytes is the anonymous memory above which --snapshot=auto forks:
// reading less than that directly stops the target for a few tens of
// milliseconds, about as long as a fork would, without making a process.
const autoForkBytes = 64 << 20

// modeFor returns the snapshot mode to use for pid.
func (f *snapshotFlag) modeFor(pid int) ptrace.SnapshotMode {
	if f.set {
		return f.mode
	}
	if procfs.Bytes(fmt.Sprintf("/proc/%d/status", pid), "RssAnon") >= autoForkBytes {
		return ptrace.SnapshotFork
	}
	return ptrace.SnapshotDirect
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
func (e *env) noteSnapshot(p *ptrace.Process, f *snapshotFlag, mode ptrace.SnapshotMode) {
	if mode != ptrace.SnapshotFork || !f.verbose() {
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
