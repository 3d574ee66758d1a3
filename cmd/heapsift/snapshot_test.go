package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/report"
)

// TestLeaksFork analyzes every fixture from a fork snapshot: the verdicts
// must be exact, the report must say the copy was analyzed, and the target
// must be left running, untraced, without a zombie child.
func TestLeaksFork(t *testing.T) {
	requirePtrace(t)
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			bin := testprog.Build(t, name)
			pid, truth := testprog.StartPaused(t, bin)
			children := childrenOf(t, pid)
			rep, code, stderr := leaksJSON(t, truth, glibcNoSymbols, "--snapshot=fork", strconv.Itoa(pid))
			checkLeakExit(t, truth, code, stderr)
			if rep.Stats.Snapshot != "fork" || rep.Stats.PauseMs <= 0 {
				t.Errorf("snapshot %q, pause %v ms; warnings %q", rep.Stats.Snapshot, rep.Stats.PauseMs, rep.Warnings)
			}
			// The scan's time is its roots' and its marking's.
			if tm := rep.Stats.Timings; tm == nil || tm.Walk <= 0 || tm.Roots <= 0 || tm.Mark < 0 || math.Abs(tm.Roots+tm.Mark-tm.Scan) > tm.Scan/10+0.1 {
				t.Errorf("timings %+v", tm)
			}
			assertUntouched(t, pid)
			if now := childrenOf(t, pid); now != children {
				t.Errorf("children of the target: %q before, %q after", children, now)
			}
		})
	}
}

// childrenOf lists the children of every thread of pid.
func childrenOf(t *testing.T, pid int) string {
	t.Helper()
	tasks, err := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/children")
	if err != nil || len(tasks) == 0 {
		t.Skipf("no /proc/PID/task/TID/children: %v", err)
	}
	var all []string
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		all = append(all, strings.Fields(string(b))...)
	}
	return strings.Join(all, " ")
}

// TestSnapshotAuto checks the default, --snapshot=auto: direct for a
// small process, fork from 64 MiB of anonymous memory.
func TestSnapshotAuto(t *testing.T) {
	requirePtrace(t)
	pid, _ := testprog.StartPaused(t, testprog.Build(t, "plain"))
	if got := autoSnapshot(t, pid); got != "direct" {
		t.Errorf("small process: snapshot %q, want direct", got)
	}

	root, err := testprog.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bench := &testprog.Builder{SourceDir: filepath.Join(root, "testdata", "bench")}
	t.Cleanup(func() { bench.Cleanup() })
	cmd := exec.Command(bench.Build(t, "pause"), filepath.Join(t.TempDir(), "stats"), "96")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || !strings.HasPrefix(line, "ready") {
		t.Fatalf("pause: %q, %v", line, err)
	}
	if got := autoSnapshot(t, cmd.Process.Pid); got != "fork" {
		t.Errorf("96 MiB process: snapshot %q, want fork", got)
	}
}

// autoSnapshot analyzes pid with the default snapshot mode and returns
// the mode the report names.
func autoSnapshot(t *testing.T, pid int) string {
	t.Helper()
	e, out, errb := testEnv(t)
	if code := traced(e, "leaks", "--json", strconv.Itoa(pid)); code != exitOK && code != exitLeaks {
		t.Fatalf("exit %d: %s", code, errb)
	}
	var rep report.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return rep.Stats.Snapshot
}
