package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// A tracee is one thread seized by Attach.
type tracee struct {
	tid     int
	stopped bool // in a ptrace-stop
	// sig is the signal of a signal-delivery-stop the thread reported
	// instead of the interrupt stop: it is delivered at detach, so that
	// no signal is lost.
	sig int
	// foreign marks a clone that is not a thread of the target (a
	// clone(2) child process with an unusual exit signal): it is only
	// detached.
	foreign bool
	// event and stopSig describe the ptrace-stop the thread sits in:
	// PTRACE_EVENT_* (0 for a signal-delivery-stop) and the stop signal
	// (SIGTRAP for our interrupt, a stop signal for a group-stop).
	event, stopSig int
}

// attacher freezes one process. It lives on the server thread.
type attacher struct {
	srv     *server
	p       *Process
	tracees map[int]*tracee
	skipped map[int]bool // zombie or exited threads, not to be seized again
	exited  []int        // threads that exited while we attached
	// copy is a fork snapshot's child process, traced by the same
	// thread: its events are never taken for a new thread's, so that it
	// is never detached (it would run the target's code).
	copy int
}

// Attach freezes the running process pid: it seizes every thread, stops
// it with PTRACE_INTERRUPT and reads its registers, mappings and
// identity. Threads that the process creates meanwhile are caught too.
// Call Detach on the result on every path. Attach(pid) is
// AttachContext(context.Background(), pid).
//
// Errors wrap ErrNoProcess, ErrPermission (with the likely reason),
// ErrSelf or ErrExited.
func Attach(pid int) (*Process, error) { return AttachContext(context.Background(), pid) }

// AttachContext is Attach with a context that can abort the wait for the
// threads to stop (a thread in uninterruptible sleep, state D, stops only
// when it leaves it). On abort every thread is released again.
func AttachContext(ctx context.Context, pid int) (*Process, error) {
	return AttachWith(ctx, pid, AttachOptions{})
}

// attachDirect freezes pid for direct reading: every thread stays stopped
// until Detach.
func attachDirect(ctx context.Context, pid int) (*Process, error) {
	pid, warning, err := checkTarget(pid)
	if err != nil {
		return nil, err
	}
	srv := newServer()
	p := &Process{pid: pid, mode: SnapshotDirect}
	if warning != "" {
		p.warnf("%s", warning)
	}
	a := &attacher{srv: srv, p: p, tracees: map[int]*tracee{}, skipped: map[int]bool{}}
	err = srv.do(func() error {
		err := a.attach(ctx)
		if err != nil {
			a.abort()
		}
		return err
	})
	if err != nil {
		srv.stop()
		return nil, err
	}
	p.att = a
	p.release = p.detachAttached
	return p, nil
}

// detachAttached releases a process frozen by Attach.
func (p *Process) detachAttached() error {
	err := p.att.srv.do(p.att.detachAll)
	p.resumed(time.Now())
	p.att.srv.stop()
	if err != nil {
		return fmt.Errorf("detach %d: %w", p.pid, err)
	}
	return nil
}

// checkTarget validates pid before any ptrace call: it must exist, not be
// heapsift, and be a process (a thread id is mapped to its process, with a
// warning).
func checkTarget(pid int) (int, string, error) {
	if pid <= 0 {
		return 0, "", fmt.Errorf("attach %d: %w with pid %d", pid, ErrNoProcess, pid)
	}
	st, err := readStatus(procDir(pid) + "/status")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, "", fmt.Errorf("attach %d: %w with pid %d", pid, ErrNoProcess, pid)
		}
		return 0, "", fmt.Errorf("attach %d: %w", pid, err)
	}
	warning := ""
	if tgid, err := strconv.Atoi(st["Tgid"]); err == nil && tgid != pid {
		warning = fmt.Sprintf("%d is a thread of process %d: attached to the process", pid, tgid)
		pid = tgid
	}
	if pid == os.Getpid() {
		return 0, "", fmt.Errorf("attach %d: %w", pid, ErrSelf)
	}
	if s, err := readStat(procDir(pid) + "/stat"); err == nil && s.flags&pfKthread != 0 {
		return 0, "", fmt.Errorf("attach %d: %w: it is a kernel thread, not a user process", pid, ErrPermission)
	}
	return pid, warning, nil
}

// attach seizes and stops every thread, then takes the snapshot.
func (a *attacher) attach(ctx context.Context) error {
	pid := a.p.pid
	for round := 0; ; round++ {
		tids, err := listTasks(pid)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				if round == 0 {
					return fmt.Errorf("attach %d: %w with pid %d", pid, ErrNoProcess, pid)
				}
				return fmt.Errorf("attach %d: %w while heapsift attached", pid, ErrExited)
			}
			return fmt.Errorf("attach %d: %w", pid, err)
		}
		added := 0
		for _, tid := range tids {
			if a.tracees[tid] != nil || a.skipped[tid] {
				continue
			}
			ok, err := a.seize(tid)
			if err != nil {
				return err
			}
			if ok {
				added++
			}
		}
		if len(a.tracees) == 0 {
			return fmt.Errorf("attach %d: %w: no live thread (zombie)", pid, ErrExited)
		}
		// A thread seized before it calls clone() passes PTRACE_O_TRACECLONE
		// on to its child; one seized during clone() may not. Once every
		// seized thread is stopped, no clone() is in flight, so a listing
		// taken then that shows nothing new is complete.
		if added == 0 && round > 0 {
			break
		}
		if err := a.waitStopped(ctx); err != nil {
			return err
		}
	}

	// The main thread first, then by thread id.
	var tids []int
	for tid, t := range a.tracees {
		if !t.foreign {
			tids = append(tids, tid)
		}
	}
	sort.Slice(tids, func(i, j int) bool {
		if (tids[i] == pid) != (tids[j] == pid) {
			return tids[i] == pid
		}
		return tids[i] < tids[j]
	})
	if n := len(a.exited); n > 0 {
		sort.Ints(a.exited)
		a.p.warnf("%d thread(s) exited while heapsift attached: %v", n, a.exited)
	}
	if err := a.p.snapshot(tids); err != nil {
		return fmt.Errorf("attach %d: %w", pid, err)
	}
	return nil
}

// seize attaches to one thread and asks it to stop. It reports whether
// the thread is now a tracee; a thread that exited meanwhile is skipped.
func (a *attacher) seize(tid int) (bool, error) {
	pid := a.p.pid
	err := seize(tid, unix.PTRACE_O_TRACECLONE)
	switch err {
	case nil:
		a.tracees[tid] = &tracee{tid: tid}
		if a.p.pauseStart.IsZero() {
			a.p.pauseStart = time.Now()
		}
		// ESRCH here means the thread is exiting; wait4 reports it.
		_ = unix.PtraceInterrupt(tid)
		return true, nil
	case unix.ESRCH:
		if tid == pid && len(a.tracees) == 0 {
			return false, fmt.Errorf("attach %d: %w with pid %d", pid, ErrNoProcess, pid)
		}
		a.exit(tid)
		return false, nil
	case unix.EPERM:
		st, serr := readStat(taskDir(pid, tid) + "/stat")
		switch {
		case serr != nil:
			a.exit(tid)
			return false, nil
		case st.state == 'Z' || st.state == 'X':
			if tid == pid {
				a.skipped[tid] = true
				a.p.warnf("the main thread (%d) has exited; its registers are gone", tid)
			} else {
				a.exit(tid)
			}
			return false, nil
		}
		// Not a clone that PTRACE_O_TRACECLONE attached for us: its
		// parent was seized in an earlier round and has reported its
		// clone event before this listing was taken.
		return false, permissionError(pid, tid)
	}
	return false, fmt.Errorf("attach %d: seize thread %d: %w", pid, tid, err)
}

// exit records a thread that exited while we attached.
func (a *attacher) exit(tid int) {
	a.skipped[tid] = true
	a.exited = append(a.exited, tid)
}

// waitStopped waits until every tracee is in a ptrace-stop.
func (a *attacher) waitStopped(ctx context.Context) error {
	if a.allStopped() {
		return nil
	}
	err := a.srv.waitTids(ctx, a.tids, a.handle, a.prune)
	if err != nil {
		return fmt.Errorf("attach %d: waiting for threads to stop: %w", a.p.pid, err)
	}
	return nil
}

func (a *attacher) allStopped() bool {
	for _, t := range a.tracees {
		if !t.stopped {
			return false
		}
	}
	return true
}

// handle records one wait4 event during attach.
func (a *attacher) handle(tid int, ws unix.WaitStatus) (bool, error) {
	pid := a.p.pid
	if tid == a.copy && a.copy != 0 {
		return a.allStopped(), nil
	}
	t := a.tracees[tid]
	if ws.Exited() || ws.Signaled() {
		delete(a.tracees, tid)
		if tid == pid {
			// The main thread is reported only once all are gone.
			return true, fmt.Errorf("attach %d: %w while heapsift attached", pid, ErrExited)
		}
		if t != nil && !t.foreign {
			a.exit(tid)
		}
		return a.allStopped(), nil
	}
	if !ws.Stopped() {
		return false, nil
	}
	if t == nil {
		// A clone reporting its first stop before its parent's clone
		// event was read.
		t = a.newClone(tid)
	}
	t.stopped = true
	t.event, t.stopSig = wsEvent(ws), int(ws.StopSignal())
	switch wsEvent(ws) {
	case 0:
		// A signal-delivery-stop came before the interrupt: keep the
		// thread here and deliver the signal at detach.
		t.sig = int(ws.StopSignal())
	case unix.PTRACE_EVENT_CLONE:
		if msg, err := unix.PtraceGetEventMsg(tid); err == nil && a.tracees[int(msg)] == nil {
			a.newClone(int(msg))
		}
	}
	// PTRACE_EVENT_STOP is the interrupt (SIGTRAP), a group-stop (its stop
	// signal: the process was or is being stopped), or a new clone's
	// first stop. Detaching restores a group-stop that is still in
	// effect, so nothing needs remembering.
	return a.allStopped(), nil
}

// newClone registers a thread that PTRACE_O_TRACECLONE attached.
func (a *attacher) newClone(tid int) *tracee {
	t := &tracee{tid: tid}
	if _, err := os.Stat(taskDir(a.p.pid, tid)); err != nil {
		t.foreign = true
	}
	a.tracees[tid] = t
	return t
}

// prune drops tracees that no longer exist and so will report nothing
// (a thread whose id changed in execve). It runs while attach waits.
func (a *attacher) prune() (bool, error) {
	for tid, t := range a.tracees {
		if t.stopped {
			continue
		}
		if _, err := os.Stat(taskDir(a.p.pid, tid)); errors.Is(err, os.ErrNotExist) && !t.foreign {
			delete(a.tracees, tid)
			a.exit(tid)
		}
	}
	return a.allStopped(), nil
}

// abortGrace is how long an aborted attach waits for interrupted threads
// to stop, so that they can be detached with their pending signal.
const abortGrace = 200 * time.Millisecond

// abort releases every tracee after a failed attach. Threads that do not
// stop within abortGrace (uninterruptible sleep) cannot be detached; the
// kernel releases them when the server thread exits.
func (a *attacher) abort() {
	if !a.allStopped() {
		ctx, cancel := context.WithTimeout(context.Background(), abortGrace)
		_ = a.srv.waitTids(ctx, a.tids, a.handle, a.prune)
		cancel()
	}
	_ = a.detachAll()
}

// detachAll detaches every stopped tracee, delivering the signal it was
// stopped for, if any. Tracees that are not stopped cannot be detached;
// they are released when the server thread exits.
func (a *attacher) detachAll() error {
	// Reap threads that were killed (SIGKILL) while stopped, so that they
	// do not linger as traced zombies.
	for _, tid := range a.tids() {
		for {
			got, ws, err := a.srv.poll(tid, 0)
			if err != nil || got == 0 {
				break
			}
			_, _ = a.handle(got, ws)
		}
	}
	var errs []error
	for tid, t := range a.tracees {
		if !t.stopped {
			continue
		}
		// ESRCH: the thread was killed (SIGKILL) while stopped.
		if err := detach(tid, t.sig); err != nil && err != unix.ESRCH {
			errs = append(errs, fmt.Errorf("thread %d: %w", tid, err))
		}
		delete(a.tracees, tid)
	}
	return errors.Join(errs...)
}

// tids lists the threads whose events the attacher waits for: every
// tracee, and a fork snapshot's copy.
func (a *attacher) tids() []int {
	out := make([]int, 0, len(a.tracees)+1)
	for tid := range a.tracees {
		out = append(out, tid)
	}
	if a.copy != 0 && a.tracees[a.copy] == nil {
		out = append(out, a.copy)
	}
	return out
}

// ownThread reports whether tid is a thread of heapsift.
func ownThread(tid int) bool {
	_, err := os.Stat("/proc/self/task/" + strconv.Itoa(tid))
	return err == nil
}

// tracerOf returns the TracerPid of a thread: the thread id of its tracer,
// 0 if none or unknown.
func tracerOf(pid, tid int) int {
	st, err := readStatus(taskDir(pid, tid) + "/status")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(st["TracerPid"])
	return n
}

// permissionError explains why the kernel refused to let us trace pid.
func permissionError(pid, tid int) error {
	var why []string
	if tracer := tracerOf(pid, tid); tracer != 0 {
		name := "heapsift itself"
		if !ownThread(tracer) {
			comm, _ := os.ReadFile(procDir(tracer) + "/comm")
			name = strings.TrimSpace(string(comm))
		}
		why = append(why, fmt.Sprintf("it is already traced by pid %d (%s)", tracer, name))
	}
	if b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil {
		switch scope := strings.TrimSpace(string(b)); scope {
		case "1":
			why = append(why, "kernel.yama.ptrace_scope is 1: only descendants may be traced without CAP_SYS_PTRACE (run as root, or set it to 0)")
		case "2":
			why = append(why, "kernel.yama.ptrace_scope is 2: only processes with CAP_SYS_PTRACE may trace")
		case "3":
			why = append(why, "kernel.yama.ptrace_scope is 3: ptrace attach is disabled")
		}
	}
	if st, err := readStatus(procDir(pid) + "/status"); err == nil {
		euid := os.Geteuid()
		if f := strings.Fields(st["Uid"]); len(f) > 0 && euid != 0 {
			for _, u := range f {
				if u != strconv.Itoa(euid) {
					why = append(why, fmt.Sprintf("it runs as uid %s and heapsift as uid %d", f[0], euid))
					break
				}
			}
		}
	}
	if len(why) == 0 {
		why = append(why, "heapsift may lack CAP_SYS_PTRACE (containers), the process may be non-dumpable (setuid, PR_SET_DUMPABLE), or a security module (SELinux, AppArmor, seccomp) denies ptrace")
	}
	return fmt.Errorf("attach %d: %w: %s", pid, ErrPermission, strings.Join(why, "; "))
}
