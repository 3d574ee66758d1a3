package ptrace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/addrspace"
)

// start starts testdata/prog with args under a Runner that is closed when
// the test ends.
func start(t *testing.T, stdout *os.File, args ...string) *Runner {
	t.Helper()
	return startProgram(t, Start, "prog", stdout, args...)
}

// startProgram starts testdata/name with args with begin (Start or
// StartTree); the Runner is closed when the test ends, and the program
// must be gone then.
func startProgram(t *testing.T, begin func([]string, []string, [3]*os.File) (*Runner, error),
	name string, stdout *os.File, args ...string) *Runner {
	t.Helper()
	argv := append([]string{binary(t, name)}, args...)
	r, err := begin(argv, nil, [3]*os.File{nil, stdout, nil})
	if errors.Is(err, ErrPermission) || errors.Is(err, syscall.EPERM) {
		t.Skipf("ptrace not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Error(err)
		}
		if alive(r.Pid()) {
			t.Errorf("program %d still exists after Close", r.Pid())
		}
	})
	return r
}

// waitExit calls WaitExit with a deadline.
func waitExit(t *testing.T, r *Runner) *Process {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := r.WaitExit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func finish(t *testing.T, r *Runner) ExitStatus {
	t.Helper()
	st, err := r.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// findMarker finds prog's marker string in the writable mappings.
func findMarker(t *testing.T, p *Process) bool {
	t.Helper()
	for _, m := range p.Mappings() {
		if m.Perm&addrspace.Write == 0 || m.Perm&addrspace.Read == 0 || m.Size() > 64<<20 {
			continue
		}
		b, err := addrspace.ReadFull(p, m.Start, int(m.Size()))
		if err != nil {
			t.Errorf("reading %v: %v", &m, err)
			continue
		}
		if bytes.Contains(b, []byte("prog-marker-42")) {
			return true
		}
	}
	return false
}

func TestRunExitCode(t *testing.T) {
	r := start(t, nil, "exit", "42")
	p := waitExit(t, r)
	threads := p.Threads()
	if len(threads) != 1 || threads[0].TID != r.Pid() {
		t.Errorf("threads %+v, want the main thread only", threads)
	}
	if st, ok := r.Status(); !ok || st.Code != 42 || st.Signal != 0 {
		t.Errorf("Status() = %v, %v before Finish", st, ok)
	}
	if !findMarker(t, p) {
		t.Error("the program's data is not readable at exit")
	}
	if info := p.Info(); info.PID != r.Pid() || len(info.Args) != 3 || info.Args[2] != "42" || info.Executable == "" {
		t.Errorf("Info() = %+v", info)
	}
	if st := finish(t, r); st.Code != 42 || st.Signal != 0 {
		t.Errorf("Finish() = %v, want exit code 42", st)
	}
	if _, err := p.ReadAt(make([]byte, 8), p.Mappings()[0].Start); !errors.Is(err, ErrDetached) {
		t.Errorf("read after Finish: %v", err)
	}
	if err := p.Detach(); err != nil {
		t.Errorf("Detach after Finish: %v", err)
	}
	if st := finish(t, r); st.Code != 42 {
		t.Errorf("second Finish() = %v", st)
	}
}

func TestRunSignalPassthrough(t *testing.T) {
	r := start(t, nil, "sigself")
	waitExit(t, r)
	if st := finish(t, r); st.Code != 7 {
		t.Errorf("Finish() = %v, want exit code 7 (the SIGUSR1 handler ran)", st)
	}
}

func TestRunCrash(t *testing.T) {
	r := start(t, nil, "crash")
	p := waitExit(t, r)
	if st, _ := r.Status(); st.Signal != syscall.SIGSEGV {
		t.Errorf("Status() = %v, want SIGSEGV", st)
	}
	threads := p.Threads()
	if len(threads) != 3 {
		t.Errorf("%d threads, want 3", len(threads))
	}
	if th := threads[0]; th.Regs.R12 != 0xdead0000c0de || th.TID == r.Pid() {
		t.Errorf("first thread %d (r12 %#x) is not the one that crashed", th.TID, th.Regs.R12)
	}
	st := finish(t, r)
	if st.Signal != syscall.SIGSEGV || st.CoreDumped {
		t.Errorf("Finish() = %v, want SIGSEGV without core", st)
	}
	if !strings.Contains(st.String(), "segmentation fault") {
		t.Errorf("String() = %q", st)
	}
}

func TestRunMultiThreadExit(t *testing.T) {
	r := start(t, nil, "mtexit", "8")
	p := waitExit(t, r)
	threads := p.Threads()
	if len(threads) != 9 || threads[0].TID != r.Pid() {
		t.Fatalf("%d threads, first %d; want 9, the main thread first", len(threads), threads[0].TID)
	}
	seen := map[uint64]bool{}
	for _, th := range threads[1:] {
		seen[th.Regs.R12] = true
		if addrspace.Find(p.Mappings(), addrspace.Addr(th.Regs.Rsp)) == nil {
			t.Errorf("thread %d: rsp %#x not mapped", th.TID, th.Regs.Rsp)
		}
	}
	for i := uint64(0); i < 8; i++ {
		if !seen[0xfeed0000+i] {
			t.Errorf("no thread with r12 = %#x", 0xfeed0000+i)
		}
	}
	if !findMarker(t, p) {
		t.Error("the program's data is not readable at exit")
	}
	if err := p.Detach(); err != nil { // like Finish
		t.Fatal(err)
	}
	if st := finish(t, r); st.Code != 3 {
		t.Errorf("Finish() = %v, want exit code 3", st)
	}
}

func TestRunGroupStop(t *testing.T) {
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := start(t, wr, "stopself")
	wr.Close()
	out := bufio.NewReader(rd)
	if line, err := out.ReadString('\n'); err != nil || line != "stopping\n" {
		t.Fatalf("output %q, %v", line, err)
	}
	// Stopped (traced, in PTRACE_LISTEN), and stays so until SIGCONT.
	waitFor(t, "the program to stop", func() bool { return processState(r.Pid()) == 't' })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := r.WaitExit(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitExit while stopped: %v", err)
	}
	if err := r.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitExit(t, r)
	if st := finish(t, r); st.Code != 5 {
		t.Errorf("Finish() = %v, want exit code 5", st)
	}
	if line, _ := out.ReadString('\n'); line != "continued\n" {
		t.Errorf("output %q after SIGCONT", line)
	}
}

func TestRunExec(t *testing.T) {
	prog := binary(t, "prog")
	// From the main thread, and from another thread (which takes over the
	// main thread's id).
	for _, mode := range []string{"exec", "thread-exec"} {
		t.Run(mode, func(t *testing.T) {
			r := start(t, nil, mode, prog, "mtexit", "2")
			p := waitExit(t, r)
			if args := p.Info().Args; len(args) != 3 || args[1] != "mtexit" || args[2] != "2" {
				t.Errorf("args %q, want those of the exec'd image", args)
			}
			threads := p.Threads()
			if len(threads) != 3 || threads[0].TID != r.Pid() {
				t.Errorf("%d threads after execve, want 3, the main thread first", len(threads))
			}
			if st := finish(t, r); st.Code != 3 {
				t.Errorf("Finish() = %v, want exit code 3", st)
			}
		})
	}
}

func TestRunThreadExit(t *testing.T) {
	r := start(t, nil, "threadexit")
	p := waitExit(t, r)
	threads := p.Threads()
	if len(threads) != 2 || threads[0].TID != r.Pid() || threads[1].Regs.R12 != 0xfeed0009 {
		t.Errorf("threads %d, want the main thread and the spinner", len(threads))
	}
	if st := finish(t, r); st.Code != 4 {
		t.Errorf("Finish() = %v, want exit code 4", st)
	}
}

func TestRunMainThreadExit(t *testing.T) {
	r := start(t, nil, "mainexit")
	p := waitExit(t, r)
	threads := p.Threads()
	if len(threads) != 1 || threads[0].TID == r.Pid() {
		t.Errorf("threads %+v, want only the last thread", threads)
	}
	if !findMarker(t, p) {
		t.Error("the program's data is not readable at exit")
	}
	if st := finish(t, r); st.Code != 6 {
		t.Errorf("Finish() = %v, want exit code 6", st)
	}
}

func TestRunStdio(t *testing.T) {
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := start(t, wr, "hello")
	wr.Close()
	if st := finish(t, r); st.Code != 0 {
		t.Errorf("Finish() = %v", st)
	}
	if line, _ := bufio.NewReader(rd).ReadString('\n'); line != "hello\n" {
		t.Errorf("output %q", line)
	}
}

func TestRunSignalForwarded(t *testing.T) {
	r := start(t, nil, "sleep")
	if err := r.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	p := waitExit(t, r)
	if len(p.Threads()) != 1 {
		t.Errorf("%d threads", len(p.Threads()))
	}
	if st := finish(t, r); st.Signal != syscall.SIGTERM {
		t.Errorf("Finish() = %v, want SIGTERM", st)
	}
	if err := r.Signal(syscall.SIGTERM); !errors.Is(err, ErrExited) {
		t.Errorf("Signal after exit: %v", err)
	}
}

func TestRunClose(t *testing.T) {
	r := start(t, nil, "sleep")
	errc := make(chan error, 1)
	go func() {
		_, err := r.WaitExit(context.Background())
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Errorf("WaitExit during Close: %v", err)
	}
	if alive(r.Pid()) {
		t.Error("program alive after Close")
	}
	if st, err := r.Finish(); err != nil || st.Signal != syscall.SIGKILL {
		t.Errorf("Finish after Close: %v, %v", st, err)
	}
}

func TestRunCloseWhileFrozen(t *testing.T) {
	r := start(t, nil, "mtexit", "2")
	p := waitExit(t, r)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReadAt(make([]byte, 8), p.Mappings()[0].Start); !errors.Is(err, ErrDetached) {
		t.Errorf("read after Close: %v", err)
	}
}

func TestRunFinishWithoutWait(t *testing.T) {
	r := start(t, nil, "mtexit", "3")
	if st := finish(t, r); st.Code != 3 {
		t.Errorf("Finish() = %v, want exit code 3", st)
	}
	if _, err := r.WaitExit(context.Background()); !errors.Is(err, ErrExited) {
		t.Errorf("WaitExit after Finish: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	if _, err := Start(nil, nil, [3]*os.File{}); err == nil {
		t.Error("Start(nil) succeeded")
	}
	if _, err := Start([]string{"/nonexistent/heapsift-test"}, nil, [3]*os.File{}); err == nil {
		t.Error("Start of a missing program succeeded")
	}
	if _, err := Start([]string{"testdata/prog.c"}, nil, [3]*os.File{}); err == nil {
		t.Error("Start of a non-executable succeeded")
	}
}
