package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// runOptions are the ptrace options of a program started by Start: follow
// its threads and execs, stop every thread at exit, and kill the program
// if heapsift dies.
const runOptions = unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEEXEC |
	unix.PTRACE_O_TRACEEXIT | unix.PTRACE_O_EXITKILL

// Bounds for steps that should take milliseconds.
const (
	startTimeout = 10 * time.Second // from fork to the program running under PTRACE_SEIZE
	closeTimeout = 5 * time.Second  // for a killed program to be reaped
)

// Syscall numbers (x86-64) that identify a thread blocked in execve while
// the kernel tears its other threads down.
const (
	sysExecve   = "59"
	sysExecveat = "322"
)

// ExitStatus is how a program ended.
type ExitStatus struct {
	Code       int            // the exit code, if Signal is 0
	Signal     syscall.Signal // the signal that killed the program, or 0
	CoreDumped bool           // the kernel wrote a core dump
}

func (s ExitStatus) String() string {
	if s.Signal == 0 {
		return "exit code " + strconv.Itoa(s.Code)
	}
	str := fmt.Sprintf("killed by signal %d (%v)", int(s.Signal), s.Signal)
	if s.CoreDumped {
		str += ", core dumped"
	}
	return str
}

// exitStatus decodes a wait status, or the message of a PTRACE_EVENT_EXIT
// stop, which has the same form.
func exitStatus(ws unix.WaitStatus) ExitStatus {
	if ws.Signaled() {
		return ExitStatus{Signal: ws.Signal(), CoreDumped: ws.CoreDump()}
	}
	return ExitStatus{Code: ws.ExitStatus()}
}

// A Runner runs a program under ptrace so that it can be frozen when it
// exits. The program runs at full speed: heapsift only passes its signals
// on (a signal arriving at the program is delivered to it as usual, and
// group-stops such as Ctrl-Z behave as usual) and follows its threads and
// execve. Child processes are not traced.
//
// Use it as:
//
//	r, err := ptrace.Start(argv, nil, [3]*os.File{})
//	if err != nil { ... }
//	defer r.Close() // kills the program if it is still there
//	p, err := r.WaitExit(ctx) // the frozen program, at its exit
//	... analyze p ...
//	status, err := r.Finish() // let it exit; how it ended
//
// All methods are safe to call from any goroutine. The program is killed
// if heapsift dies (PTRACE_O_EXITKILL).
type Runner struct {
	srv  *server
	pid  int
	name string

	closing   chan struct{} // closed when Close starts
	closed    chan struct{} // closed when Close is done
	closeOnce sync.Once
	closeErr  error
	frozen    chan struct{} // closed once proc/frozeErr/exiting are set
	gone      chan struct{} // closed once status is set: the program is reaped

	// Written on the server thread before frozen or gone is closed.
	proc     *Process
	frozeErr error
	exiting  ExitStatus
	status   ExitStatus

	// Owned by the server thread.
	threads   map[int]*runThread
	releasing bool // Finish or Close: let every thread exit
	reaped    bool
	froze     bool
}

// runThread is a thread of the program, as the server thread tracks it.
type runThread struct {
	inExit  bool           // held in its PTRACE_EVENT_EXIT stop
	exitMsg uint           // the exit status announced by that stop
	lastSig syscall.Signal // the last signal delivered to it
	foreign bool           // a clone that is not a thread of the program
}

// Start starts argv under ptrace, with environment env (nil: heapsift's)
// and stdin, stdout and stderr from stdio (nil entries: heapsift's own).
// argv[0] is looked up in PATH unless it contains a slash. The program
// runs from its first instruction on; call WaitExit to freeze it at exit,
// and Close on every path.
func Start(argv []string, env []string, stdio [3]*os.File) (*Runner, error) {
	if len(argv) == 0 {
		return nil, errors.New("run: no command")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", argv[0], err)
	}
	if env == nil {
		env = os.Environ()
	}
	files := [3]*os.File{os.Stdin, os.Stdout, os.Stderr}
	var fds [3]uintptr
	for i := range files {
		if stdio[i] != nil {
			files[i] = stdio[i]
		}
		fds[i] = files[i].Fd()
	}
	r := &Runner{
		srv:     newServer(),
		name:    argv[0],
		closing: make(chan struct{}),
		closed:  make(chan struct{}),
		frozen:  make(chan struct{}),
		gone:    make(chan struct{}),
		threads: map[int]*runThread{},
	}
	argv = slices.Clone(argv)
	err = r.srv.do(func() error { return r.start(path, argv, env, fds[:]) })
	runtime.KeepAlive(files)
	if err != nil {
		r.srv.stop()
		return nil, fmt.Errorf("run %s: %w", argv[0], err)
	}
	return r, nil
}

// Pid returns the program's process id.
func (r *Runner) Pid() int { return r.pid }

// start forks and execs the program and puts it under PTRACE_SEIZE. It
// runs on the server thread: PTRACE_TRACEME makes the forking thread the
// tracer.
func (r *Runner) start(path string, argv, env []string, fds []uintptr) error {
	pid, err := syscall.ForkExec(path, argv, &syscall.ProcAttr{
		Env:   env,
		Files: fds,
		// Pdeathsig covers the moment below when the program is
		// neither traced nor running.
		Sys: &syscall.SysProcAttr{Ptrace: true, Pdeathsig: syscall.SIGKILL},
	})
	if err != nil {
		return err
	}
	r.pid = pid
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := r.seizeChild(ctx); err != nil {
		_ = unix.Kill(pid, unix.SIGKILL)
		for {
			ws, werr := r.waitChild(ctx, 0)
			if werr != nil || ws.Exited() || ws.Signaled() {
				break
			}
		}
		return err
	}
	r.threads[pid] = &runThread{}
	r.srv.events = r.event
	return nil
}

// seizeChild trades the PTRACE_TRACEME link of the new program for a
// PTRACE_SEIZE one: only seized tracees support PTRACE_LISTEN, without
// which a group-stop (SIGSTOP, Ctrl-Z) cannot be let to happen while the
// program is traced. This is how strace starts programs too.
func (r *Runner) seizeChild(ctx context.Context) error {
	pid := r.pid
	// The program stops with SIGTRAP after execve, before its first
	// instruction.
	ws, err := r.waitChild(ctx, 0)
	if err != nil {
		return err
	}
	if !ws.Stopped() || ws.StopSignal() != unix.SIGTRAP {
		return fmt.Errorf("unexpected status %#x after execve", uint32(ws))
	}
	// Detach into a group-stop, so that it cannot run untraced...
	if err := detach(pid, int(unix.SIGSTOP)); err != nil {
		return fmt.Errorf("detach after execve: %w", err)
	}
	if ws, err = r.waitChild(ctx, unix.WUNTRACED); err != nil {
		return err
	}
	if !ws.Stopped() {
		return fmt.Errorf("unexpected status %#x instead of SIGSTOP", uint32(ws))
	}
	// ...seize it there (it reports PTRACE_EVENT_STOP)...
	if err := seize(pid, runOptions); err != nil {
		return fmt.Errorf("seize: %w", err)
	}
	if ws, err = r.waitChild(ctx, 0); err != nil {
		return err
	}
	if !ws.Stopped() || wsEvent(ws) != unix.PTRACE_EVENT_STOP {
		return fmt.Errorf("unexpected status %#x after seize", uint32(ws))
	}
	// ...and end the group-stop. SIGCONT is not queued to a program that
	// has no handler for it, which is the case right after execve.
	if err := unix.Kill(pid, unix.SIGCONT); err != nil {
		return fmt.Errorf("SIGCONT: %w", err)
	}
	return cont(pid, 0)
}

// waitChild waits for the next event of the main thread.
func (r *Runner) waitChild(ctx context.Context, flags int) (unix.WaitStatus, error) {
	var got unix.WaitStatus
	err := r.srv.wait(ctx, r.pid, flags, func(_ int, ws unix.WaitStatus) (bool, error) {
		got = ws
		return true, nil
	}, nil)
	return got, err
}

// WaitExit waits until the program exits (exit_group, a fatal signal, or
// the exit of its last thread) and returns it frozen there: every thread
// is held in its exit stop, with its registers, and the memory is intact.
// Release it with Finish (or Process.Detach, or Close).
//
// A program killed by a signal is frozen too (SIGSEGV, or even SIGKILL on
// current kernels); Status tells which signal. If ctx ends first,
// WaitExit returns ctx.Err() and the program runs on; WaitExit may be
// called again. If the program is gone without an exit stop (some kernels
// skip it for SIGKILL), the error wraps ErrExited. Once frozen, WaitExit
// returns the same Process again.
func (r *Runner) WaitExit(ctx context.Context) (*Process, error) {
	select {
	case <-r.frozen:
	case <-r.gone:
	case <-r.closing:
		return nil, fmt.Errorf("run %s: %w", r.name, ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case <-r.frozen:
		if r.frozeErr != nil {
			return nil, fmt.Errorf("run %s: %w", r.name, r.frozeErr)
		}
		return r.proc, nil
	default:
		return nil, fmt.Errorf("run %s: %w (%v) before it could be frozen", r.name, ErrExited, r.status)
	}
}

// Status reports how the program ends: the final status once it was
// reaped (after Finish), else the status announced by its exit stop once
// WaitExit froze it. ok is false before either.
func (r *Runner) Status() (s ExitStatus, ok bool) {
	select {
	case <-r.gone:
		return r.status, true
	default:
	}
	select {
	case <-r.frozen:
		return r.exiting, r.frozeErr == nil
	default:
		return ExitStatus{}, false
	}
}

// Finish lets the program exit and returns how it ended: its exit code,
// or the signal that killed it. Called before the program exits, it lets
// the program run to its end without freezing it. The frozen Process, if
// any, is released. Finish is idempotent.
func (r *Runner) Finish() (ExitStatus, error) {
	err := r.srv.do(func() error {
		r.release()
		return nil
	})
	if err != nil && !errors.Is(err, errStopped) {
		return ExitStatus{}, fmt.Errorf("run %s: %w", r.name, err)
	}
	select {
	case <-r.gone:
	case <-r.closed:
		select {
		case <-r.gone:
		default:
			return ExitStatus{}, fmt.Errorf("run %s: %w", r.name, ErrClosed)
		}
	}
	r.srv.stop()
	if r.proc != nil {
		r.proc.closeMem()
	}
	return r.status, nil
}

// Signal sends sig to the program (for a CLI that forwards Ctrl-C). It
// is safe against pid reuse: the program is reaped only by the Runner.
func (r *Runner) Signal(sig syscall.Signal) error {
	err := r.srv.do(func() error {
		if r.reaped {
			return ErrExited
		}
		return unix.Kill(r.pid, sig)
	})
	if errors.Is(err, errStopped) {
		err = ErrExited
	}
	if err != nil {
		return fmt.Errorf("run %s: signal %v: %w", r.name, sig, err)
	}
	return nil
}

// Close kills the program (SIGKILL) unless it is already gone, reaps it
// and ends the ptrace thread. It is idempotent and safe to call from any
// goroutine, while WaitExit or Finish run (they return ErrClosed).
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		close(r.closing)
		err := r.srv.do(func() error {
			if r.reaped {
				return nil
			}
			r.release()
			// Only this thread reaps the program, so pid is still it.
			return unix.Kill(r.pid, unix.SIGKILL)
		})
		switch {
		case errors.Is(err, errStopped):
			err = nil
		case err == nil:
			select {
			case <-r.gone:
			case <-time.After(closeTimeout):
				err = fmt.Errorf("program %d did not die within %v of SIGKILL", r.pid, closeTimeout)
			}
		}
		r.srv.stop()
		if r.proc != nil {
			r.proc.closeMem()
		}
		if err != nil {
			r.closeErr = fmt.Errorf("run %s: close: %w", r.name, err)
		}
		close(r.closed)
	})
	return r.closeErr
}

// release lets every held thread exit, now and from now on.
func (r *Runner) release() {
	r.releasing = true
	if r.proc != nil {
		r.proc.released.Store(true)
	}
	for tid, t := range r.threads {
		if t.inExit {
			r.resume(tid, 0)
			delete(r.threads, tid)
		}
	}
}

// resume continues a stopped thread. A thread that vanished (killed) is
// not an error: its exit is reported by wait4.
func (r *Runner) resume(tid int, sig syscall.Signal) {
	_ = cont(tid, int(sig))
}

// event handles one wait4 event while the program runs. It is called on
// the server thread.
func (r *Runner) event(tid int, ws unix.WaitStatus) {
	if ws.Exited() || ws.Signaled() {
		delete(r.threads, tid)
		if tid == r.pid {
			// The main thread is reported last: the program is gone.
			r.reaped = true
			r.status = exitStatus(ws)
			r.srv.events = nil
			if r.proc != nil {
				r.proc.released.Store(true)
			}
			close(r.gone)
			return
		}
		r.checkFrozen()
		return
	}
	if !ws.Stopped() {
		return
	}
	t := r.threads[tid]
	if t == nil {
		t = r.newThread(tid)
	}
	sig := ws.StopSignal()
	event := wsEvent(ws)
	if t.foreign {
		// Not ours to trace (yet: --follow-forks would keep it).
		if event != 0 {
			sig = 0
		}
		_ = detach(tid, int(sig))
		delete(r.threads, tid)
		return
	}
	switch event {
	case 0:
		// Signal-delivery-stop: deliver the signal, as if untraced.
		t.lastSig = sig
		r.resume(tid, sig)
	case unix.PTRACE_EVENT_STOP:
		if isStopSignal(sig) {
			// Group-stop: stay stopped until SIGCONT, like an
			// untraced process.
			_ = listen(tid)
		} else {
			// A new thread's first stop, or the end of a group-stop.
			r.resume(tid, 0)
		}
	case unix.PTRACE_EVENT_CLONE:
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil && r.threads[int(msg)] == nil {
			r.newThread(int(msg))
		}
		r.resume(tid, 0)
	case unix.PTRACE_EVENT_EXEC:
		// execve replaced the program: the thread that called it now
		// has the main thread's id, and all other threads are gone.
		r.threads = map[int]*runThread{tid: {}}
		r.resume(tid, 0)
	case unix.PTRACE_EVENT_EXIT:
		msg, _ := unix.PtraceGetEventMsg(tid)
		t.inExit, t.exitMsg = true, msg
		if r.releasing || r.froze || !r.groupExiting(tid) {
			// Only this thread ends (or execve tears the others
			// down): let it go.
			delete(r.threads, tid)
			r.resume(tid, 0)
			return
		}
		r.checkFrozen()
	default:
		r.resume(tid, 0)
	}
}

// newThread registers a thread that PTRACE_O_TRACECLONE attached.
func (r *Runner) newThread(tid int) *runThread {
	t := &runThread{}
	if _, err := os.Stat(taskDir(r.pid, tid)); err != nil {
		t.foreign = true
	}
	r.threads[tid] = t
	return t
}

// peer states for groupExiting.
const (
	peerAlive = iota
	peerDying
	peerExecve
)

// groupExiting decides, for thread tid in its exit stop, whether the
// whole program is exiting (exit_group, a fatal signal, or the last
// thread's exit): then the kernel has already marked every other thread
// for death (SIGKILL pending, or PF_SIGNALED once it took it), before tid
// reached its exit stop. Otherwise only tid ends (exit(2),
// pthread_exit), or execve in another thread tears tid down. Holding a
// thread whose exit is not the program's could deadlock a pthread_join,
// so when in doubt tid is let go (losing only its registers).
func (r *Runner) groupExiting(tid int) bool {
	for try := 0; ; try++ {
		alive, dying := 0, 0
		for other, t := range r.threads {
			if other == tid || t.inExit || t.foreign {
				continue
			}
			switch peerState(r.pid, other) {
			case peerExecve:
				return false
			case peerDying:
				dying++
			default:
				alive++
			}
		}
		if alive == 0 {
			return true
		}
		if dying == 0 || try == 5 {
			return false
		}
		// Some threads dying and others not: a thread can be between
		// taking its SIGKILL and setting PF_SIGNALED. Look again.
		time.Sleep(time.Millisecond)
	}
}

// peerState tells whether thread tid is dying, blocked in execve, or
// alive, from /proc. A thread that is gone counts as dying.
func peerState(pid, tid int) int {
	dir := taskDir(pid, tid)
	if st, err := readStatus(dir + "/status"); err != nil {
		return peerDying
	} else if pnd, err := strconv.ParseUint(st["SigPnd"], 16, 64); err == nil && pnd&(1<<(unix.SIGKILL-1)) != 0 {
		return peerDying
	}
	st, err := readStat(dir + "/stat")
	if err != nil || st.state == 'Z' || st.state == 'X' || st.flags&(pfExiting|pfSignaled) != 0 {
		return peerDying
	}
	if b, err := os.ReadFile(dir + "/syscall"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 && (f[0] == sysExecve || f[0] == sysExecveat) {
			return peerExecve
		}
	}
	return peerAlive
}

// checkFrozen freezes the program once every thread is held in its exit
// stop.
func (r *Runner) checkFrozen() {
	if r.froze || r.releasing {
		return
	}
	var tids []int
	for tid, t := range r.threads {
		if t.foreign {
			continue
		}
		if !t.inExit {
			return
		}
		tids = append(tids, tid)
	}
	if len(tids) == 0 {
		return
	}
	r.froze = true
	// The thread that took the fatal signal first, else the main
	// thread, then by id.
	st := exitStatus(unix.WaitStatus(r.threads[tids[0]].exitMsg))
	crashed := 0
	if st.Signal != 0 {
		for _, tid := range tids {
			if r.threads[tid].lastSig == st.Signal && (crashed == 0 || tid < crashed) {
				crashed = tid
			}
		}
	}
	rank := func(tid int) int {
		switch tid {
		case crashed:
			return 0
		case r.pid:
			return 1
		}
		return 2
	}
	sort.Slice(tids, func(i, j int) bool {
		if ri, rj := rank(tids[i]), rank(tids[j]); ri != rj {
			return ri < rj
		}
		return tids[i] < tids[j]
	})
	p := &Process{pid: r.pid}
	if err := p.snapshot(tids); err != nil {
		r.frozeErr = err
	}
	p.release = func() error {
		_, err := r.Finish()
		return err
	}
	r.proc = p
	r.exiting = st
	close(r.frozen)
}
