package testprog

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Time limits. The fixtures build their heaps in milliseconds; these only
// bound a broken fixture.
const (
	truthTimeout     = 30 * time.Second
	quiescentTimeout = 10 * time.Second
	exitTimeout      = 60 * time.Second
	pollInterval     = 5 * time.Millisecond
)

// StartPaused starts fixture bin with HS_MODE=pause (env adds variables),
// waits until it has written its truth file and every one of its threads
// sleeps, and returns its pid and truth. The process runs in its own
// process group, which a t.Cleanup kills; its output goes to a log in
// t.TempDir() that failures quote.
func StartPaused(t testing.TB, bin string, env ...string) (pid int, truth *Truth) {
	t.Helper()
	dir := t.TempDir()
	truthPath := filepath.Join(dir, "truth.json")
	logPath := filepath.Join(dir, "output.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testprog: %v", err)
	}
	cmd := exec.Command(bin, truthPath)
	cmd.Env = append(append(os.Environ(), env...), "HS_MODE=pause")
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = cmd.Start()
	logf.Close()
	if err != nil {
		t.Fatalf("testprog: starting %s: %v", bin, err)
	}
	pid = cmd.Process.Pid
	// The program is our child, and the code under test may ptrace it from
	// this very process: a wait4 on it here would steal the tracer's stop
	// notifications. So nothing waits for it until the cleanup kills it;
	// an early exit shows as a zombie in /proc.
	t.Cleanup(func() {
		syscall.Kill(-pid, syscall.SIGKILL)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Logf("testprog: %s (pid %d) did not die", filepath.Base(bin), pid)
		}
	})
	done := exited(pid)

	truth, err = waitTruth(truthPath, done, logPath)
	if err != nil {
		t.Fatalf("testprog: %s: %v", filepath.Base(bin), err)
	}
	if truth.PID != pid {
		t.Fatalf("testprog: %s: truth pid %d is not the program's pid %d", filepath.Base(bin), truth.PID, pid)
	}
	if err := waitQuiescent(pid); err != nil {
		t.Fatalf("testprog: %s: %v", filepath.Base(bin), err)
	}
	return pid, truth
}

// exited reports on the channel when pid becomes a zombie or vanishes,
// without reaping it.
func exited(pid int) <-chan error {
	ch := make(chan error, 1)
	go func() {
		for {
			states, err := ThreadStates(pid)
			if err != nil || states[pid] == 'Z' || states[pid] == 'X' || len(states) == 0 {
				ch <- fmt.Errorf("process %d is gone", pid)
				return
			}
			time.Sleep(pollInterval)
		}
	}()
	return ch
}

// waitTruth waits for the truth file, failing early if the program exits.
func waitTruth(path string, done <-chan error, logPath string) (*Truth, error) {
	deadline := time.Now().Add(truthTimeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return LoadTruth(path)
		}
		select {
		case err := <-done:
			return nil, fmt.Errorf("exited (%v) before writing its truth file%s", err, logTail(logPath))
		case <-time.After(pollInterval):
		}
	}
	return nil, fmt.Errorf("wrote no truth file within %v%s", truthTimeout, logTail(logPath))
}

// waitQuiescent waits until every thread of pid is sleeping (S or D): the
// program has parked.
func waitQuiescent(pid int) error {
	deadline := time.Now().Add(quiescentTimeout)
	for {
		states, err := ThreadStates(pid)
		if err != nil {
			return err
		}
		busy := []string{}
		for tid, s := range states {
			if s != 'S' && s != 'D' {
				busy = append(busy, fmt.Sprintf("%d:%c", tid, s))
			}
		}
		if len(states) > 0 && len(busy) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			sort.Strings(busy)
			return fmt.Errorf("threads still not asleep after %v: %s", quiescentTimeout, strings.Join(busy, " "))
		}
		time.Sleep(pollInterval)
	}
}

// ThreadStates returns the scheduler state letter (R, S, D, t, T, Z, …) of
// every thread of process pid, from /proc/PID/task/*/stat.
func ThreadStates(pid int) (map[int]byte, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("process %d: %v", pid, err)
	}
	out := make(map[int]byte, len(ents))
	for _, e := range ents {
		var tid int
		if _, err := fmt.Sscan(e.Name(), &tid); err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "stat"))
		if err != nil {
			continue // the thread exited
		}
		// "tid (comm) S …": comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(data, ')')
		if i < 0 || i+2 >= len(data) {
			return nil, fmt.Errorf("thread %d: malformed stat %q", tid, data)
		}
		out[tid] = data[i+2]
	}
	return out, nil
}

// CommandExit returns the argv and environment that run fixture bin in
// exit mode, writing its truth to truthPath: for `heapsift run -- argv...`
// with env as the environment.
func CommandExit(bin, truthPath string) (argv, env []string) {
	return []string{bin, truthPath}, append(os.Environ(), "HS_MODE=exit")
}

// RunExit runs fixture bin to completion in exit mode (env adds
// variables), fails the test unless it exits 0, and returns its truth.
func RunExit(t testing.TB, bin string, env ...string) *Truth {
	t.Helper()
	truthPath := filepath.Join(t.TempDir(), "truth.json")
	argv, baseEnv := CommandExit(bin, truthPath)
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(append(baseEnv, env...), "HS_MODE=exit")
	cmd.Dir = filepath.Dir(truthPath)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			t.Fatalf("testprog: %s timed out after %v", filepath.Base(bin), exitTimeout)
		}
		t.Fatalf("testprog: %s in exit mode: %v\n%s", filepath.Base(bin), err, out.String())
	}
	truth, err := LoadTruth(truthPath)
	if err != nil {
		t.Fatalf("testprog: %s: %v", filepath.Base(bin), err)
	}
	if truth.PID != cmd.Process.Pid {
		t.Fatalf("testprog: %s: truth pid %d is not the program's pid %d", filepath.Base(bin), truth.PID, cmd.Process.Pid)
	}
	return truth
}

// logTail returns the end of a log file, formatted for an error message.
func logTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil || len(bytes.TrimSpace(data)) == 0 {
		return ""
	}
	if len(data) > 600 {
		data = data[len(data)-600:]
	}
	return ": " + strings.ReplaceAll(strings.TrimSpace(string(data)), "\n", " | ")
}

// StartBench builds the benchmark program name of testdata/bench, starts
// it with args in its own process group (which a cleanup kills), and
// returns its cmd and the first line it prints ("ready PID ..."), with no
// truth file: those programs report what they hold on that line.
func StartBench(t testing.TB, name string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	builder := &Builder{SourceDir: filepath.Join(root, "testdata", "bench")}
	t.Cleanup(func() { builder.Cleanup() })
	cmd := exec.Command(builder.Build(t, name), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return cmd, strings.TrimSpace(line)
}
