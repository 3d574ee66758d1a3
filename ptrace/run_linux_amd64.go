package ptrace

import (
	"context"
	"errors"
	"fmt"
	"io"
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

// treeOptions are added by StartTree: follow fork and vfork children too
// (clone children are reported through PTRACE_O_TRACECLONE already). The
// kernel gives every auto-attached child the options of its parent, so the
// whole tree is traced with them, PTRACE_O_EXITKILL included.
const treeOptions = unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK

// Bounds for steps that should take milliseconds.
const (
	startTimeout = 10 * time.Second // from fork to the program running under PTRACE_SEIZE
	closeTimeout = 5 * time.Second  // for a killed program to be reaped
)

// Syscall numbers (x86-64) that identify a thread blocked in execve while
// the kernel tears its other threads down, and a thread that ends its
// whole process.
const (
	sysExecve    = "59"
	sysExecveat  = "322"
	sysExit      = 60
	sysExitGroup = 231
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
// execve. With Start, child processes are not traced; with StartTree,
// every process of the tree is (see Next).
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
	tree bool // StartTree: trace every process of the tree

	closing   chan struct{} // closed when Close starts
	closed    chan struct{} // closed when Close is done
	closeOnce sync.Once
	closeErr  error
	frozen    chan struct{} // closed once proc/frozeErr/exiting are set
	gone      chan struct{} // closed once status is set: the program is reaped
	empty     chan struct{} // closed once every traced process is reaped
	ready     chan struct{} // holds a token when queue grew (StartTree)

	// Written on the server thread before frozen or gone is closed.
	proc     *Process
	frozeErr error
	exiting  ExitStatus
	status   ExitStatus

	// The processes frozen at exit that Next has not returned yet.
	mu       sync.Mutex
	queue    []frozenProc
	finished bool // Finish or Close emptied the queue for good

	// Owned by the server thread (read by Finish and Close once it has
	// stopped).
	root      *runProc
	procs     map[int]*runProc // every traced process, by process id
	tasks     map[int]*runProc // every traced thread, by thread id
	made      []*Process       // every Process frozen so far
	releasing bool             // Finish or Close: let every thread exit
	killing   bool             // Close: kill every process, new ones too
	reaped    bool             // the program (the root) is reaped
}

// A frozenProc is an entry of the queue that Next reads: a frozen
// process, or why one could not be frozen.
type frozenProc struct {
	p   *Process
	err error
}

// runProc is one traced process, as the server thread tracks it.
type runProc struct {
	pid     int
	threads map[int]*runThread // its threads, until they are let go
	froze   bool               // frozen at its exit (or given up on): let later exits pass
	// groupExit: the whole process is exiting (decided at the first
	// thread's exit stop that showed it).
	groupExit bool
	proc      *Process // the frozen process, once froze
	// vforkParent is the process that vfork'd this one, until it execs:
	// it shares that process's memory (used where kcmp is missing).
	vforkParent int
}

// runThread is a thread of a traced process, as the server thread tracks
// it.
type runThread struct {
	inExit  bool           // held in its PTRACE_EVENT_EXIT stop
	exitMsg uint           // the exit status announced by that stop
	lastSig syscall.Signal // the last signal delivered to it
}

// Start starts argv under ptrace, with environment env (nil: heapsift's)
// and stdin, stdout and stderr from stdio (nil entries: heapsift's own).
// argv[0] is looked up in PATH unless it contains a slash. The program
// runs from its first instruction on; call WaitExit to freeze it at exit,
// and Close on every path.
func Start(argv []string, env []string, stdio [3]*os.File) (*Runner, error) {
	return startRunner(argv, env, stdio, false)
}

// StartTree is Start for a whole process tree: the program and every
// process it creates, directly or not (fork, vfork, clone without
// CLONE_THREAD), through any execve, including children whose parent
// exited (reparented to init or a subreaper, they stay traced). Each of
// them is frozen at its own exit, with its memory intact, and returned by
// Next, while the others run on. Use it as:
//
//	r, err := ptrace.StartTree(argv, nil, [3]*os.File{})
//	if err != nil { ... }
//	defer r.Close() // kills the whole tree if anything is left
//	for {
//		p, err := r.Next(ctx)
//		if err == io.EOF {
//			break // every process of the tree is gone
//		}
//		... (see Next for the other errors)
//		... analyze p ...
//		p.Detach() // this process may finish exiting
//	}
//	status, err := r.Finish() // how the program (the root) ended
//
// WaitExit is not available on such a Runner; Status, Signal and Pid
// concern the program that StartTree started.
func StartTree(argv []string, env []string, stdio [3]*os.File) (*Runner, error) {
	return startRunner(argv, env, stdio, true)
}

func startRunner(argv []string, env []string, stdio [3]*os.File, tree bool) (*Runner, error) {
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
		tree:    tree,
		closing: make(chan struct{}),
		closed:  make(chan struct{}),
		frozen:  make(chan struct{}),
		gone:    make(chan struct{}),
		empty:   make(chan struct{}),
		ready:   make(chan struct{}, 1),
		procs:   map[int]*runProc{},
		tasks:   map[int]*runProc{},
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
	r.root = r.addProc(pid)
	r.srv.events = r.event
	r.srv.idle = r.recheckExecve
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
	opts := runOptions
	if r.tree {
		opts |= treeOptions
	}
	if err := seize(pid, opts); err != nil {
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
//
// On a Runner from StartTree, use Next instead: WaitExit fails.
func (r *Runner) WaitExit(ctx context.Context) (*Process, error) {
	if r.tree {
		return nil, fmt.Errorf("run %s: WaitExit on a process tree: use Next", r.name)
	}
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

// Next returns the next process of a tree started by StartTree that is
// frozen at its exit: every thread held in its exit stop, the memory
// intact, while the other processes of the tree run on. Processes are
// returned in the order they exit, the program itself among them.
// Release each with Process.Detach (the process then finishes exiting)
// as soon as it is analyzed: until then, its parent cannot reap it, and a
// vfork parent stays blocked.
//
// Next returns io.EOF once every process of the tree is gone and each
// frozen one was returned, or after Finish. It returns ctx.Err() if ctx
// ends first and ErrClosed after Close. An error wrapping ErrExited
// concerns one process that died (SIGKILL) while it was being frozen: it
// names it, and Next may be called again.
func (r *Runner) Next(ctx context.Context) (*Process, error) {
	if !r.tree {
		return nil, fmt.Errorf("run %s: Next needs StartTree; use WaitExit", r.name)
	}
	for {
		select {
		case <-r.closing:
			return nil, fmt.Errorf("run %s: %w", r.name, ErrClosed)
		default:
		}
		r.mu.Lock()
		if len(r.queue) > 0 {
			f := r.queue[0]
			r.queue = r.queue[1:]
			r.mu.Unlock()
			return f.p, f.err
		}
		finished := r.finished
		r.mu.Unlock()
		if finished {
			return nil, io.EOF
		}
		select {
		case <-r.ready:
		case <-r.empty:
			// Every process was frozen (queued) before it was
			// reaped: whatever the queue holds now is all there is.
			r.mu.Lock()
			n := len(r.queue)
			r.mu.Unlock()
			if n == 0 {
				return nil, io.EOF
			}
		case <-r.closing:
			return nil, fmt.Errorf("run %s: %w", r.name, ErrClosed)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// enqueue hands a frozen process (or an error) to Next.
func (r *Runner) enqueue(f frozenProc) {
	r.mu.Lock()
	if r.finished {
		r.mu.Unlock()
		if f.p != nil {
			f.p.released.Store(true)
		}
		return
	}
	r.queue = append(r.queue, f)
	r.mu.Unlock()
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// Status reports how the program ends: the final status once it was
// reaped (after Finish), else the status announced by its exit stop once
// WaitExit froze it (with StartTree: once it reached its exit stop). ok
// is false before either.
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
//
// With StartTree, Finish releases every frozen process (Next returns
// io.EOF from then on), lets every process of the tree run to its end
// without freezing it, and waits until all of them are gone, like
// strace -f: a process that never exits keeps Finish waiting (Close
// kills it).
func (r *Runner) Finish() (ExitStatus, error) {
	err := r.srv.do(func() error {
		r.release()
		return nil
	})
	if err != nil && !errors.Is(err, errStopped) {
		return ExitStatus{}, fmt.Errorf("run %s: %w", r.name, err)
	}
	select {
	case <-r.empty:
	case <-r.closed:
	}
	select {
	case <-r.gone:
	default:
		return ExitStatus{}, fmt.Errorf("run %s: %w", r.name, ErrClosed)
	}
	r.srv.stop()
	r.closeMems()
	return r.status, nil
}

// closeMems closes the memory files of every frozen process. The server
// must have stopped.
func (r *Runner) closeMems() {
	for _, p := range r.made {
		p.closeMem()
	}
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
// goroutine, while WaitExit, Next or Finish run (they return ErrClosed).
// With StartTree, every process of the tree that is left is killed.
func (r *Runner) Close() error {
	r.closeOnce.Do(func() {
		close(r.closing)
		err := r.srv.do(func() error {
			if len(r.procs) == 0 {
				return nil
			}
			r.release()
			r.killing = true
			var first error
			// Only this thread reaps traced processes, so their
			// pids are still theirs.
			for _, rp := range r.procs {
				if err := unix.Kill(rp.pid, unix.SIGKILL); err != nil && first == nil {
					first = fmt.Errorf("kill %d: %w", rp.pid, err)
				}
			}
			return first
		})
		switch {
		case errors.Is(err, errStopped):
			err = nil
		case err == nil:
			select {
			case <-r.empty:
			case <-time.After(closeTimeout):
				err = fmt.Errorf("program %d did not die within %v of SIGKILL", r.pid, closeTimeout)
			}
		}
		// Whatever is left (nothing, normally) is killed by the kernel
		// when the tracer thread exits (PTRACE_O_EXITKILL).
		r.srv.stop()
		r.closeMems()
		if err != nil {
			r.closeErr = fmt.Errorf("run %s: close: %w", r.name, err)
		}
		close(r.closed)
	})
	return r.closeErr
}

// release lets every held thread exit, now and from now on, and empties
// the queue of Next.
func (r *Runner) release() {
	r.releasing = true
	for _, rp := range r.procs {
		if rp.proc != nil {
			rp.proc.released.Store(true)
		}
		r.letGo(rp)
	}
	r.mu.Lock()
	for _, f := range r.queue {
		if f.p != nil {
			f.p.released.Store(true)
		}
	}
	r.queue, r.finished = nil, true
	r.mu.Unlock()
}

// letGo resumes the threads of rp that are held in their exit stop.
func (r *Runner) letGo(rp *runProc) {
	for tid, t := range rp.threads {
		if t.inExit {
			r.resume(tid, 0)
			delete(rp.threads, tid)
		}
	}
}

// releaseProc lets one process of a tree, frozen as p, finish exiting.
func (r *Runner) releaseProc(rp *runProc, p *Process) error {
	err := r.srv.do(func() error {
		if r.procs[rp.pid] == rp && rp.proc == p {
			r.letGo(rp)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopped) {
		return fmt.Errorf("release %d: %w", rp.pid, err)
	}
	return nil
}

// resume continues a stopped thread. A thread that vanished (killed) is
// not an error: its exit is reported by wait4.
func (r *Runner) resume(tid int, sig syscall.Signal) {
	_ = cont(tid, int(sig))
}

// addProc starts tracking process pid, with its main thread.
func (r *Runner) addProc(pid int) *runProc {
	rp := &runProc{pid: pid, threads: map[int]*runThread{}}
	r.procs[pid] = rp
	r.addThread(rp, pid)
	return rp
}

// addThread starts tracking thread tid of rp.
func (r *Runner) addThread(rp *runProc, tid int) {
	if rp.threads[tid] == nil {
		rp.threads[tid] = &runThread{}
	}
	r.tasks[tid] = rp
}

// event handles one wait4 event while the program runs. It is called on
// the server thread.
func (r *Runner) event(tid int, ws unix.WaitStatus) {
	if ws.Exited() || ws.Signaled() {
		r.died(tid, ws)
		return
	}
	if !ws.Stopped() {
		return
	}
	sig := ws.StopSignal()
	event := wsEvent(ws)
	rp := r.tasks[tid]
	if rp == nil {
		if rp = r.adopt(tid); rp == nil {
			// Not ours to trace: a clone that is not a thread of
			// the program (Start), or a task that is gone.
			if event != 0 {
				sig = 0
			}
			_ = detach(tid, int(sig))
			return
		}
	}
	t := rp.threads[tid]
	if t == nil {
		t = &runThread{}
		rp.threads[tid] = t
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
			// A new thread's or process's first stop, or the end of
			// a group-stop.
			r.resume(tid, 0)
		}
	case unix.PTRACE_EVENT_CLONE, unix.PTRACE_EVENT_FORK, unix.PTRACE_EVENT_VFORK:
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil {
			r.newTask(rp, int(msg), event)
		}
		r.resume(tid, 0)
	case unix.PTRACE_EVENT_EXEC:
		// execve replaced the program: the thread that called it now
		// has the main thread's id, and all other threads are gone
		// (they report their death, except the old main thread).
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil && int(msg) != tid {
			delete(r.tasks, int(msg))
		}
		rp.threads = map[int]*runThread{tid: {}}
		r.tasks[tid] = rp
		rp.vforkParent = 0
		rp.groupExit = false
		r.resume(tid, 0)
	case unix.PTRACE_EVENT_EXIT:
		msg, _ := unix.PtraceGetEventMsg(tid)
		t.inExit, t.exitMsg = true, msg
		if r.releasing || rp.froze || !r.groupExiting(rp, tid) {
			// Only this thread ends (or execve tears the others
			// down): let it go.
			delete(rp.threads, tid)
			r.resume(tid, 0)
			return
		}
		r.checkFrozen(rp)
	default:
		r.resume(tid, 0)
	}
}

// died handles the death of thread tid, reported by wait4.
func (r *Runner) died(tid int, ws unix.WaitStatus) {
	rp := r.tasks[tid]
	if rp == nil {
		rp = r.procs[tid] // a main thread known only as its process's id
	}
	delete(r.tasks, tid)
	if rp == nil {
		return
	}
	delete(rp.threads, tid)
	if tid != rp.pid {
		r.checkFrozen(rp)
		return
	}
	// The main thread is reported last: the process is gone.
	for other, t := range r.tasks {
		if t == rp {
			delete(r.tasks, other)
		}
	}
	delete(r.procs, rp.pid)
	if rp.proc != nil {
		rp.proc.released.Store(true)
	}
	if rp == r.root {
		r.reaped = true
		r.status = exitStatus(ws)
		close(r.gone)
	}
	if len(r.procs) == 0 {
		r.srv.events = nil
		close(r.empty)
	}
}

// newTask registers the thread or process tid that a clone, fork or vfork
// of parent created. Its first stop may have come before its creator's
// event, and registered it already; it may even have lived and died
// meanwhile (wait4 reports the newest tracees first, and the creator can
// be slow to reach its event stop).
func (r *Runner) newTask(parent *runProc, tid, event int) {
	if r.tasks[tid] != nil {
		if rp := r.procs[tid]; rp != nil && event == unix.PTRACE_EVENT_VFORK {
			rp.vforkParent = parent.pid
		}
		return
	}
	if event == unix.PTRACE_EVENT_CLONE {
		if _, err := os.Stat(taskDir(parent.pid, tid)); err == nil {
			r.addThread(parent, tid) // a thread of parent
			return
		}
		if !r.tree {
			// A clone(2) child process with an unusual exit
			// signal: not ours to trace, let go at its first stop.
			return
		}
	}
	if !r.tree {
		return
	}
	// A new process (a clone without CLONE_THREAD is the leader of its
	// own thread group), unless it is gone already: then its pid is no
	// longer traced by this thread (reaped, or even reused).
	if !r.tracedProcess(tid) {
		return
	}
	rp := r.procs[tid]
	if rp == nil {
		rp = r.addProc(tid)
		if r.killing {
			_ = unix.Kill(tid, unix.SIGKILL)
		}
	}
	if event == unix.PTRACE_EVENT_VFORK {
		rp.vforkParent = parent.pid
	}
}

// tracedProcess tells whether pid is a process (thread group leader)
// traced by this server thread.
func (r *Runner) tracedProcess(pid int) bool {
	st, err := readStatus(procDir(pid) + "/status")
	return err == nil && st["Tgid"] == strconv.Itoa(pid) && st["TracerPid"] == strconv.Itoa(r.srv.tid)
}

// adopt registers an unknown thread tid: with Start, a new thread of the
// program (nil if it is something else, such as a clone(2) child process
// with an unusual exit signal, which is let go); with StartTree, a thread
// or a new process of the tree (nil if it is gone). A new process is
// killed at once while Close is under way.
func (r *Runner) adopt(tid int) *runProc {
	if !r.tree {
		if _, err := os.Stat(taskDir(r.pid, tid)); err != nil {
			return nil
		}
		r.addThread(r.root, tid)
		return r.root
	}
	st, err := readStatus(procDir(tid) + "/status")
	if err != nil {
		return nil
	}
	tgid, err := strconv.Atoi(st["Tgid"])
	if err != nil {
		return nil
	}
	rp := r.procs[tgid]
	if rp == nil {
		rp = &runProc{pid: tgid, threads: map[int]*runThread{}}
		r.procs[tgid] = rp
		if r.killing {
			_ = unix.Kill(tgid, unix.SIGKILL)
		}
	}
	r.addThread(rp, tid)
	return rp
}

// groupExiting decides, for thread tid of rp in its exit stop, whether the
// whole process is exiting (exit_group, a fatal signal, or the last
// thread's exit), or only tid ends (exit(2), pthread_exit), or execve in
// another thread tears tid down. Holding a thread whose exit is not the
// process's could deadlock a pthread_join, so when in doubt tid is let go
// (losing only its registers).
func (r *Runner) groupExiting(rp *runProc, tid int) bool {
	if rp.groupExit {
		return true
	}
	// tid called exit_group, or dies of a signal (PF_SIGNALED: a fatal
	// signal, or the SIGKILL that a group exit or execve sends every
	// other thread): the whole process ends, unless execve in another
	// thread is what tears tid down. This needs no look at the other
	// threads' state, which can lag (the thread that called exit_group
	// shows no sign of dying until it has passed its exit stop).
	regs, err := getRegs(tid)
	whole := err == nil && regs.OrigRax == sysExitGroup
	if !whole && (err != nil || regs.OrigRax != sysExit) {
		st, err := readStat(taskDir(rp.pid, tid) + "/stat")
		whole = err == nil && st.flags&pfSignaled != 0
	}
	if whole {
		for other, t := range rp.threads {
			if other != tid && !t.inExit && inExecve(rp.pid, other) {
				return false
			}
		}
		rp.groupExit = true
		return true
	}
	// Only tid ends (exit(2), pthread_exit), unless it is the last
	// thread: every other one is dying, gone, or in its exit stop (held,
	// or not returned by wait4 yet). The main thread first: the likeliest
	// to live on.
	others := make([]int, 0, len(rp.threads))
	for other, t := range rp.threads {
		if other == tid || t.inExit {
			continue
		}
		if other == rp.pid {
			others = append([]int{other}, others...)
		} else {
			others = append(others, other)
		}
	}
	for _, other := range others {
		st, err := readStat(taskDir(rp.pid, other) + "/stat")
		if err == nil && st.state != 'Z' && st.state != 'X' && st.flags&(pfExiting|pfSignaled) == 0 && !pendingExitStop(other) {
			return false
		}
	}
	return true
}

// recheckExecve undoes a wrong groupExiting decision. When a thread that
// is not the main thread calls execve, the kernel kills every other
// thread, the main one included, and waits for them all to be gone; if
// the execve caller was still running (not yet blocked in execve) when
// the first of them reached its exit stop, that looked like a fatal
// signal, and holding those threads would block the execve for good. So,
// while a process waits to be frozen, a thread found blocked in execve
// means: let the held threads go.
func (r *Runner) recheckExecve() {
	for _, rp := range r.procs {
		if !rp.groupExit || rp.froze || r.releasing {
			continue
		}
		exec := false
		for tid, t := range rp.threads {
			if !t.inExit && inExecve(rp.pid, tid) {
				exec = true
			}
		}
		if !exec {
			continue
		}
		rp.groupExit = false
		for tid, t := range rp.threads {
			if t.inExit {
				delete(rp.threads, tid)
				r.resume(tid, 0)
			}
		}
	}
}

// inExecve tells whether thread tid of pid is blocked in execve.
func inExecve(pid, tid int) bool {
	b, err := os.ReadFile(taskDir(pid, tid) + "/syscall")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 0 && (f[0] == sysExecve || f[0] == sysExecveat)
}

// checkFrozen freezes process rp once every thread is held in its exit
// stop.
func (r *Runner) checkFrozen(rp *runProc) {
	if rp.froze || r.releasing {
		return
	}
	var tids []int
	for tid, t := range rp.threads {
		if !t.inExit {
			return
		}
		tids = append(tids, tid)
	}
	if len(tids) == 0 {
		return
	}
	rp.froze = true
	// The thread that took the fatal signal first, else the main
	// thread, then by id.
	st := exitStatus(unix.WaitStatus(rp.threads[tids[0]].exitMsg))
	crashed := 0
	if st.Signal != 0 {
		for _, tid := range tids {
			if rp.threads[tid].lastSig == st.Signal && (crashed == 0 || tid < crashed) {
				crashed = tid
			}
		}
	}
	rank := func(tid int) int {
		switch tid {
		case crashed:
			return 0
		case rp.pid:
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
	p := &Process{pid: rp.pid, exiting: st, atExit: true}
	err := p.snapshot(tids)
	p.sharedWith = r.sharesMemory(rp)
	rp.proc = p
	r.made = append(r.made, p)
	if r.tree {
		p.release = func() error { return r.releaseProc(rp, p) }
	} else {
		r.proc = p
		p.release = func() error {
			_, err := r.Finish()
			return err
		}
	}
	if rp == r.root {
		r.frozeErr = err
		r.exiting = st
		close(r.frozen)
	}
	if !r.tree {
		return
	}
	if err != nil {
		// Killed meanwhile: nothing to analyze, let it go.
		p.released.Store(true)
		r.letGo(rp)
		r.enqueue(frozenProc{err: fmt.Errorf("process %d (%s): %w", rp.pid, strings.Join(p.info.Args, " "), err)})
		return
	}
	r.enqueue(frozenProc{p: p})
}

// kcmpVM is KCMP_VM of kcmp(2): do two tasks share an address space?
const kcmpVM = 1

// sharesMemory returns another traced process, still running, that
// shares rp's address space (a vfork or CLONE_VM child that did not exec,
// or its parent), or 0.
func (r *Runner) sharesMemory(rp *runProc) int {
	for _, o := range r.procs {
		if o == rp || o.froze {
			continue
		}
		res, _, errno := unix.Syscall6(unix.SYS_KCMP, uintptr(rp.pid), uintptr(o.pid), kcmpVM, 0, 0, 0)
		switch {
		case errno == 0 && res == 0:
			return o.pid
		case errno == unix.ENOSYS || errno == unix.EPERM:
			// No kcmp: only vfork children are known to share.
			if p := r.procs[rp.vforkParent]; p != nil && !p.froze {
				return p.pid
			}
			return 0
		}
	}
	return 0
}
