package ptrace

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
)

// SnapshotMode says how a process from Attach is read.
type SnapshotMode int

const (
	// SnapshotDirect reads the process itself, every thread stopped
	// until Detach.
	SnapshotDirect SnapshotMode = iota
	// SnapshotFork makes the stopped process fork a copy of itself
	// (copy-on-write, so it costs page tables, not memory), lets the
	// process run on at once, and reads the copy, which never runs.
	SnapshotFork
)

func (m SnapshotMode) String() string {
	switch m {
	case SnapshotDirect:
		return "direct"
	case SnapshotFork:
		return "fork"
	}
	return fmt.Sprintf("SnapshotMode(%d)", int(m))
}

// ParseSnapshotMode parses "direct" or "fork".
func ParseSnapshotMode(s string) (SnapshotMode, error) {
	switch s {
	case "direct":
		return SnapshotDirect, nil
	case "fork":
		return SnapshotFork, nil
	}
	return 0, fmt.Errorf("snapshot mode %q: want direct or fork", s)
}

// AttachOptions are the options of AttachWith.
type AttachOptions struct {
	// Snapshot chooses how the process is read (default SnapshotDirect).
	Snapshot SnapshotMode

	// For tests: skipSeccompCheck lets the kernel refuse an injected
	// system call instead of heapsift foreseeing it; injectTID forces
	// the thread that forks; trace is told every stop of an injection.
	skipSeccompCheck bool
	injectTID        int
	trace            func(format string, args ...any)
}

// AttachWith is AttachContext with options.
//
// With SnapshotFork, the process is stopped as by Attach, its registers
// and mappings are taken, and then one of its threads is made to call
// clone(2) (its registers are set for the duration of that one system
// call, then restored; memory is never written). The child, a
// copy-on-write copy of the whole address space that heapsift keeps
// stopped and never lets run, is what the returned Process reads; the
// process itself runs on as soon as the copy exists (see Pause). Info,
// Threads and Mappings still describe the process at the moment it was
// stopped. Ranges that the copy does not hold faithfully (MADV_DONTFORK,
// MADV_WIPEONFORK) are marked Missing, with a warning. Detach kills the
// copy and makes the process reap it.
//
// When the copy cannot be made (a seccomp filter forbids clone, a cgroup
// or rlimit refuses a new process, the process is in a group-stop...), the
// Process reads the stopped process directly, as with SnapshotDirect, and
// its Warnings say why; Snapshot tells which mode is in effect.
func AttachWith(ctx context.Context, pid int, opts AttachOptions) (*Process, error) {
	var pre siteGuess
	var shared uint64
	var sharedDone chan struct{}
	if opts.Snapshot == SnapshotFork {
		pre = guessSyscallSite(pid)
	} else {
		// smaps walks the page tables: 30 ms for a 2 GiB heap, read
		// while the threads are attached.
		sharedDone = make(chan struct{})
		go func() {
			defer close(sharedDone)
			shared = sharedAnon(pid)
		}()
	}
	p, err := attachDirect(ctx, pid)
	if sharedDone != nil {
		<-sharedDone
	}
	if err != nil {
		return p, err
	}
	if opts.Snapshot == SnapshotFork {
		err := p.forkSnapshot(opts, pre)
		if err == nil {
			return p, nil
		}
		p.warnf("fork snapshot failed: %v; reading the stopped process directly", err)
		shared = sharedAnon(pid)
	}
	if shared >= sharedAnonLimit {
		// Since Linux 5.19 process_vm_readv's read-only page pins make
		// the kernel give the target its own copy of every page it shares
		// copy-on-write with a process it forked (or that forked it): the
		// read would grow the target's memory. /proc/PID/mem does not.
		p.noVMReadv.Store(true)
		p.warnf("process %d shares %d MiB of memory copy-on-write with a parent or child process; reading it through /proc/%d/mem, which does not unshare those pages", pid, shared>>20, pid)
	}
	return p, nil
}

// sharedAnonLimit is how much copy-on-write sharing makes direct reads
// avoid process_vm_readv.
const sharedAnonLimit = 1 << 20

// sharedAnon returns how many bytes of pid's anonymous private memory are
// shared with other processes (copy-on-write after fork), from
// /proc/PID/smaps; 0 when it cannot be read.
func sharedAnon(pid int) uint64 {
	var total uint64
	_ = readSmaps(procDir(pid)+"/smaps", func(m *addrspace.Mapping, key, value string) {
		heapOrStack := m.Path == "" || m.Path == "[heap]" || strings.HasPrefix(m.Path, "[stack")
		if (key == "Shared_Clean:" || key == "Shared_Dirty:") && heapOrStack && m.Perm&addrspace.Shared == 0 {
			var kb uint64
			fmt.Sscanf(value, "%d", &kb)
			total += kb << 10
		}
	})
	return total
}

// Snapshot returns how the process is read: SnapshotFork only if the
// copy was made.
func (p *Process) Snapshot() SnapshotMode { return p.mode }

// Pause returns how long the target was stopped for heapsift: from the
// first PTRACE_INTERRUPT of Attach until its threads were let go: right
// after the copy was made with SnapshotFork, at Detach otherwise (while a
// directly read process is still stopped, the time so far). It is 0 for
// a process from a Runner.
func (p *Process) Pause() time.Duration {
	if d := p.pause.Load(); d != 0 {
		return time.Duration(d)
	}
	if p.pauseStart.IsZero() {
		return 0
	}
	return time.Since(p.pauseStart)
}

// CleanupPause returns how long one thread of the target was stopped at
// Detach to reap a fork snapshot's copy (0 before Detach, in direct mode,
// or if the process had exited).
func (p *Process) CleanupPause() time.Duration { return time.Duration(p.cleanup.Load()) }

// resumed records the end of the pause, once.
func (p *Process) resumed(t time.Time) {
	if !p.pauseStart.IsZero() {
		p.pause.CompareAndSwap(0, max(1, int64(t.Sub(p.pauseStart))))
	}
}

// filesPID is the process whose /proc entries stand for the frozen
// address space: the copy of a fork snapshot, else the process.
func (p *Process) filesPID() int {
	if p.copy != nil {
		return p.copy.pid
	}
	return p.pid
}

// A forkCopy is the child process of a fork snapshot.
type forkCopy struct {
	pid  int    // its process id; it is a tracee of the server thread
	site uint64 // the syscall instruction used, for the cleanup
	tid  int    // the thread of the target that forked it
	// where names the syscall instruction ("getpid in /usr/lib/libc.so.6").
	where string
	trace func(format string, args ...any) // AttachOptions.trace
}

// cloneFlags are the flags of the injected clone. The exit signal (low
// byte) is 0: the target gets no SIGCHLD for the copy, and wait calls
// without __WALL or __WCLONE do not see it. CLONE_FILES shares the file
// descriptor table instead of copying it, so that the copy holds no
// reference to any open file: a socket or pipe end the target closes
// meanwhile really closes.
const cloneFlags = unix.CLONE_FILES

// forkSnapshot makes the copy and switches p over to it. On error the
// process is still stopped and p reads it directly.
func (p *Process) forkSnapshot(opts AttachOptions, pre siteGuess) error {
	site, where := pre.site, pre.where
	if !p.sameSite(pre) {
		var err error
		if site, where, err = p.syscallSite(); err != nil {
			return err
		}
	}
	var c *forkCopy
	err := p.att.srv.do(func() error {
		var err error
		c, err = p.att.fork(site, opts)
		return err
	})
	if err != nil {
		return err
	}
	c.where = where

	// What could fail is done before the target runs on, so that a
	// failure can still fall back: the copy's mappings (ranges it lacks,
	// MADV_DONTFORK) and its memory file.
	discard := func(err error) error {
		return errors.Join(err, p.att.srv.do(func() error { return p.att.discardCopy(c) }))
	}
	childMaps, err := readMaps(procDir(c.pid) + "/maps")
	if err != nil {
		return discard(fmt.Errorf("mappings of the copy %d: %w", c.pid, err))
	}
	// The copy is read through /proc/PID/mem only: process_vm_readv pins
	// pages, and pinning an anonymous page that fork shared makes the
	// kernel copy it (Linux 5.19+), which would duplicate the heap.
	mem, err := os.Open(procDir(c.pid) + "/mem")
	if err != nil {
		return discard(fmt.Errorf("memory of the copy %d: %w", c.pid, err))
	}

	if err := p.att.srv.do(p.att.detachAll); err != nil {
		p.warnf("letting process %d run on after the fork snapshot: %v", p.pid, err)
	}
	p.resumed(time.Now())

	wiped, werr := wipedRanges(procDir(c.pid) + "/smaps")
	if werr != nil {
		p.warnf("fork snapshot: MADV_WIPEONFORK ranges unknown (%v): they would read as zeroes", werr)
	}
	maps, warns := compareCopy(p.maps, childMaps, wiped)
	p.maps = maps
	p.warnings = append(p.warnings, warns...)

	p.copy = c
	p.mode = SnapshotFork
	p.memTID = c.pid
	p.dir = taskDir(c.pid, c.pid)
	if p.mem != nil {
		p.mem.Close()
	}
	p.mem = mem
	p.noVMReadv.Store(true)
	p.release = p.releaseFork
	return nil
}

// A siteGuess is a syscall instruction found in a process before it was
// stopped: decoding libc's functions takes milliseconds that the target
// need not stand still for.
type siteGuess struct {
	site  uint64
	where string
	m     addrspace.Mapping // the mapping that holds it
}

// guessSyscallSite looks for a syscall instruction in the running
// process pid; the zero siteGuess if none is found.
func guessSyscallSite(pid int) siteGuess {
	maps, err := readMaps(procDir(pid) + "/maps")
	if err != nil {
		return siteGuess{}
	}
	pre := &Process{pid: pid, memTID: pid, dir: taskDir(pid, pid), maps: maps}
	pre.info.Executable, _ = os.Readlink(procDir(pid) + "/exe")
	site, where, err := pre.syscallSite()
	if err != nil {
		return siteGuess{}
	}
	return siteGuess{site, where, *addrspace.Find(maps, addrspace.Addr(site))}
}

// sameSite checks a guess against the stopped process: the same mapping
// of the same file is still there, with the instruction in it.
func (p *Process) sameSite(g siteGuess) bool {
	if g.site == 0 {
		return false
	}
	m := addrspace.Find(p.maps, addrspace.Addr(g.site))
	if m == nil || m.Start != g.m.Start || m.End != g.m.End || m.Offset != g.m.Offset ||
		m.Inode != g.m.Inode || m.Dev != g.m.Dev || m.Path != g.m.Path || m.Perm&addrspace.Exec == 0 {
		return false
	}
	b, err := addrspace.ReadFull(p, addrspace.Addr(g.site), 2)
	return err == nil && b[0] == 0x0f && b[1] == 0x05
}

// maxForkTries bounds the attempts at the clone when signals get in the
// way.
const maxForkTries = 3

// fork makes the copy from a stopped thread, with every thread of the
// target still stopped. It runs on the server thread.
func (a *attacher) fork(site uint64, opts AttachOptions) (*forkCopy, error) {
	pid := a.p.pid
	cands, err := a.forkCandidates()
	if err != nil {
		return nil, err
	}
	if opts.injectTID != 0 {
		cands = []*tracee{a.tracees[opts.injectTID]}
		if cands[0] == nil {
			return nil, fmt.Errorf("thread %d not found", opts.injectTID)
		}
	}
	args := [6]uint64{cloneFlags}
	var errs []error
	for tries := 0; tries < maxForkTries && len(cands) > 0; tries++ {
		t := cands[0]
		if !t.stopped || t.event != unix.PTRACE_EVENT_STOP || t.stopSig != int(unix.SIGTRAP) || t.sig != 0 {
			cands = cands[1:]
			tries--
			continue
		}
		if !opts.skipSeccompCheck {
			if err := seccompAllows(pid, t.tid, unix.SYS_CLONE, args, site+2); err != nil {
				return nil, err
			}
			// The copy must be reaped by the target later.
			reapArgs := [6]uint64{0, 0, unix.WALL | unix.WNOHANG}
			if err := seccompAllows(pid, t.tid, unix.SYS_WAIT4, reapArgs, site+2); err != nil {
				return nil, fmt.Errorf("%w: heapsift could not reap its copy", err)
			}
		}
		tid := t.tid
		in := &injection{
			srv: a.srv, tid: tid, site: site, nr: unix.SYS_CLONE, args: args,
			opts: unix.PTRACE_O_TRACECLONE,
			// PTRACE_O_EXITKILL is inherited by the copy at the
			// moment it is created: if heapsift dies, the copy dies
			// too instead of running as a second instance of the
			// target. It is taken off the target's thread at the
			// clone event.
			extra: unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_EXITKILL,
			onEvent: func(int) {
				_ = unix.PtraceSetOptions(tid, unix.PTRACE_O_TRACECLONE|unix.PTRACE_O_TRACESYSGOOD)
			},
		}
		in.trace = opts.trace
		res, err := in.run()
		if res.stopped {
			t.event, t.stopSig, t.sig = res.event, res.stopSig, res.sig
		}
		if res.child != 0 {
			a.copy = res.child
			c := &forkCopy{pid: res.child, site: site, tid: tid, trace: opts.trace}
			if err == nil && res.ran && res.ret == int64(res.child) {
				if err = a.waitCopy(c); err == nil {
					return c, nil
				}
			} else if err == nil {
				err = fmt.Errorf("clone returned %d, but the new process is %d", res.ret, res.child)
			}
			return nil, errors.Join(err, a.discardCopy(c))
		}
		if err != nil {
			if errors.Is(err, ErrExited) || !res.stopped {
				return nil, err // the thread is not where it can be used
			}
			errs = append(errs, err)
			if res.sig != 0 || res.stopSig != int(unix.SIGTRAP) {
				cands = cands[1:] // a signal is in the way on this thread
			}
			continue
		}
		if res.ret == erestartNoIntr {
			errs = append(errs, fmt.Errorf("thread %d: clone interrupted by a signal", tid))
			continue
		}
		if res.ret < 0 {
			return nil, fmt.Errorf("clone in thread %d: %w", tid, unix.Errno(-res.ret))
		}
		return nil, fmt.Errorf("clone in thread %d returned %d without a clone event", tid, res.ret)
	}
	if len(errs) == 0 {
		return nil, errors.New("no thread stopped where a system call can be injected")
	}
	return nil, errors.Join(errs...)
}

// forkCandidates returns the threads that can make the injected clone,
// best first: threads sleeping in a system call (the main thread first),
// then threads in user code outside any rseq critical section, then
// threads in calls that swap their signal mask. A process in a
// group-stop is not forked: it does not run anyway.
func (a *attacher) forkCandidates() ([]*tracee, error) {
	regs := map[int]addrspace.Regs{}
	for _, th := range a.p.threads {
		// A 32-bit (compat) thread cannot run the syscall instruction.
		if th.Regs.Cs != userCS64 {
			return nil, fmt.Errorf("thread %d runs 32-bit code (cs %#x)", th.TID, th.Regs.Cs)
		}
		regs[th.TID] = th.Regs
	}
	type cand struct {
		t    *tracee
		rank int
	}
	var cs []cand
	for _, t := range a.tracees {
		if t.stopped && t.event == unix.PTRACE_EVENT_STOP && t.stopSig != int(unix.SIGTRAP) {
			return nil, fmt.Errorf("process %d is stopped (%s): it does not run anyway", a.p.pid, unix.SignalName(unix.Signal(t.stopSig)))
		}
	}
	for _, t := range a.tracees {
		r, ok := regs[t.tid]
		if t.foreign || !ok || !t.stopped || t.sig != 0 || t.event != unix.PTRACE_EVENT_STOP || t.stopSig != int(unix.SIGTRAP) {
			continue
		}
		rank := 0
		switch {
		case int64(r.OrigRax) < 0:
			in, known := a.p.inRseqCS(t.tid, r.Rip)
			if in || !known {
				continue
			}
			rank = 1
		case maskSwappingCalls[r.OrigRax]:
			rank = 2
		}
		cs = append(cs, cand{t, rank})
	}
	sort.Slice(cs, func(i, j int) bool {
		if cs[i].rank != cs[j].rank {
			return cs[i].rank < cs[j].rank
		}
		if (cs[i].t.tid == a.p.pid) != (cs[j].t.tid == a.p.pid) {
			return cs[i].t.tid == a.p.pid
		}
		return cs[i].t.tid < cs[j].t.tid
	})
	out := make([]*tracee, len(cs))
	for i, c := range cs {
		out[i] = c.t
	}
	if len(out) == 0 {
		return nil, errors.New("no thread is stopped where a system call can be injected (all in signal stops or rseq critical sections)")
	}
	return out, nil
}

// userCS64 is the code segment of 64-bit user mode (__USER_CS).
const userCS64 = 0x33

// copyStopTimeout bounds the wait for the copy's first stop.
const copyStopTimeout = 10 * time.Second

// waitCopy waits for the copy's first stop, which comes before it runs a
// single instruction, and checks that it sits right after the clone.
func (a *attacher) waitCopy(c *forkCopy) error {
	ctx, cancel := context.WithTimeout(context.Background(), copyStopTimeout)
	defer cancel()
	var stop unix.WaitStatus
	err := a.srv.wait(ctx, c.pid, 0, func(_ int, ws unix.WaitStatus) (bool, error) {
		if ws.Exited() || ws.Signaled() {
			return true, fmt.Errorf("the copy %d died at birth (status %#x)", c.pid, uint32(ws))
		}
		stop = ws
		return ws.Stopped(), nil
	}, nil)
	if err != nil {
		return fmt.Errorf("waiting for the copy %d to stop: %w", c.pid, err)
	}
	if wsEvent(stop) != unix.PTRACE_EVENT_STOP {
		return fmt.Errorf("the copy %d stopped with status %#x, not in its initial stop", c.pid, uint32(stop))
	}
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(c.pid, &r); err != nil {
		return fmt.Errorf("registers of the copy %d: %w", c.pid, err)
	}
	if r.Rip != c.site+2 || r.Rax != 0 {
		return fmt.Errorf("the copy %d stopped at %#x with rax %#x, not right after its clone", c.pid, r.Rip, r.Rax)
	}
	// Inherited already; said again in case the kernel did not.
	if err := unix.PtraceSetOptions(c.pid, unix.PTRACE_O_EXITKILL); err != nil {
		return fmt.Errorf("options of the copy %d: %w", c.pid, err)
	}
	return nil
}

// dropCopy kills the copy and waits for its end (as its tracer). It then
// is a zombie child of the target, which reapCopy makes the target reap.
func (a *attacher) dropCopy(c *forkCopy) error {
	if err := unix.Kill(c.pid, unix.SIGKILL); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill the copy %d: %w", c.pid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), copyStopTimeout)
	defer cancel()
	err := a.srv.wait(ctx, c.pid, 0, func(_ int, ws unix.WaitStatus) (bool, error) {
		return ws.Exited() || ws.Signaled(), nil
	}, nil)
	if errors.Is(err, unix.ECHILD) {
		err = nil // reaped already
	}
	if err != nil {
		return fmt.Errorf("waiting for the copy %d to die: %w", c.pid, err)
	}
	a.copy = 0
	return nil
}

// releaseFork kills the copy, makes the target reap it, and stops the
// server.
func (p *Process) releaseFork() error {
	a, c := p.att, p.copy
	err := a.srv.do(func() error {
		if err := a.dropCopy(c); err != nil {
			return err
		}
		return a.reapCopy(c)
	})
	a.srv.stop()
	if err != nil {
		return fmt.Errorf("release the fork snapshot of %d: %w", p.pid, err)
	}
	return nil
}

// copyParent returns the parent pid and state of a process, from
// /proc/PID/stat; ok is false if it is gone.
func copyParent(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(procDir(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return 0, 0, false
	}
	ppid, err = strconv.Atoi(f[1])
	return ppid, f[0][0], err == nil
}

// reapTries bounds the attempts at stopping a thread of the target for
// the cleanup when signals come in between.
const reapTries = 3

// reapStopTimeout bounds the wait for a thread of the target to stop for
// the cleanup (a thread in uninterruptible sleep stops only when it
// leaves it).
const reapStopTimeout = 5 * time.Second

// reapCopy makes the target reap the dead copy, its child: the copy's
// exit signal is 0, so the target would never notice it. One thread of
// the target is seized and stopped, made to call
// wait4(copy, NULL, __WALL|WNOHANG, NULL), and let go. Nothing is left to
// do if the target has exited (the copy then belongs to a reaper).
func (a *attacher) reapCopy(c *forkCopy) error {
	pid := a.p.pid
	var errs []error
	tried := map[int]bool{}
	for try := 0; try < reapTries; try++ {
		ppid, state, ok := copyParent(c.pid)
		if !ok || ppid != pid || state != 'Z' {
			return nil // gone, or not the target's any more
		}
		tid := cleanupThread(pid, tried)
		if tid == 0 {
			return nil // exited
		}
		tried[tid] = true
		done, err := a.reapFrom(c, tid)
		if done {
			return err
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("the copy %d is left as a zombie child of %d: %w", c.pid, pid, errors.Join(errs...))
}

// Interrupting a thread makes some system calls return EINTR to the
// program (epoll_wait, sigtimedwait, socket calls with a timeout...). The
// thread for the cleanup is preferably one that sleeps in a call that the
// kernel restarts transparently: nanosleep, clock_nanosleep, futex, wait4,
// poll, select, pause.
var restartingCalls = map[int]bool{35: true, 230: true, 202: true, 61: true, 7: true, 23: true, 34: true}

// cleanupThread chooses the thread of pid to stop for the cleanup, not
// one of tried: one in a transparently restarting call (from
// /proc/PID/task/TID/syscall), else the main thread, else any; 0 if the
// process is gone.
func cleanupThread(pid int, tried map[int]bool) int {
	tids, err := listTasks(pid)
	if err != nil {
		return 0
	}
	best, rank := 0, 3
	for _, tid := range tids {
		if tried[tid] {
			continue
		}
		st, err := readStat(taskDir(pid, tid) + "/stat")
		if err != nil || st.state == 'Z' || st.state == 'X' {
			continue
		}
		r := 2
		if tid == pid {
			r = 1
		}
		if b, err := os.ReadFile(taskDir(pid, tid) + "/syscall"); err == nil {
			f := strings.Fields(string(b))
			if nr, err := strconv.Atoi(firstOr(f, "")); err == nil && restartingCalls[nr] {
				r = 0
			}
		}
		if r < rank {
			best, rank = tid, r
		}
	}
	if best == 0 && len(tried) > 0 {
		return cleanupThread(pid, nil)
	}
	return best
}

func firstOr(f []string, def string) string {
	if len(f) == 0 {
		return def
	}
	return f[0]
}

// reapFrom stops thread tid of the target and injects the wait4 that
// reaps the copy. done is false if a signal got in the way: the thread is
// then let go with it, to try again.
func (a *attacher) reapFrom(c *forkCopy, tid int) (done bool, err error) {
	if err := seize(tid, 0); err != nil {
		if err == unix.ESRCH {
			return false, fmt.Errorf("thread %d: %w", tid, err)
		}
		return true, fmt.Errorf("seize thread %d: %w", tid, err)
	}
	start := time.Now()
	defer func() { a.p.cleanup.Add(int64(time.Since(start))) }()
	if err := unix.PtraceInterrupt(tid); err != nil {
		_ = detach(tid, 0)
		return false, fmt.Errorf("interrupt thread %d: %w", tid, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), reapStopTimeout)
	var stop unix.WaitStatus
	err = a.srv.wait(ctx, tid, 0, func(_ int, ws unix.WaitStatus) (bool, error) {
		stop = ws
		return true, nil
	}, nil)
	cancel()
	if err != nil {
		// Still running: the kernel detaches it when the server
		// thread exits.
		return true, fmt.Errorf("thread %d did not stop: %w", tid, err)
	}
	if !stop.Stopped() {
		return true, nil // the target died
	}
	if ev := wsEvent(stop); ev != unix.PTRACE_EVENT_STOP {
		sig := 0
		if ev == 0 {
			sig = int(stop.StopSignal())
		}
		_ = detach(tid, sig)
		return false, fmt.Errorf("thread %d stopped with status %#x", tid, uint32(stop))
	}
	res, ierr := a.injectReap(c, tid, 0)
	if errors.Is(ierr, ErrExited) {
		return true, nil
	}
	if derr := detach(tid, res.sig); derr != nil && derr != unix.ESRCH {
		ierr = errors.Join(ierr, fmt.Errorf("detach thread %d: %w", tid, derr))
	}
	// A signal that stopped the thread before the call ran was just
	// delivered: try again.
	return res.ran || res.sig == 0, ierr
}

// injectReap makes the stopped tracee tid call
// wait4(copy, NULL, __WALL|WNOHANG, NULL); opts are its ptrace options.
func (a *attacher) injectReap(c *forkCopy, tid, opts int) (injected, error) {
	args := [6]uint64{uint64(c.pid), 0, unix.WALL | unix.WNOHANG}
	if err := seccompAllows(a.p.pid, tid, unix.SYS_WAIT4, args, c.site+2); err != nil {
		return injected{}, err
	}
	in := &injection{srv: a.srv, tid: tid, site: c.site, nr: unix.SYS_WAIT4, args: args, opts: opts, trace: c.trace}
	res, err := in.run()
	switch {
	case err != nil:
		return res, err
	case res.ret == int64(c.pid), res.ret == -int64(unix.ECHILD):
		return res, nil
	case res.ret < 0:
		return res, fmt.Errorf("wait4 in thread %d: %w", tid, unix.Errno(-res.ret))
	}
	return res, fmt.Errorf("wait4 in thread %d returned %d", tid, res.ret)
}

// discardCopy kills the copy while the target is still stopped, and makes
// the thread that forked it reap it.
func (a *attacher) discardCopy(c *forkCopy) error {
	if err := a.dropCopy(c); err != nil {
		return err
	}
	if ppid, state, ok := copyParent(c.pid); !ok || ppid != a.p.pid || state != 'Z' {
		return nil
	}
	t := a.tracees[c.tid]
	if t == nil || !t.stopped || t.event != unix.PTRACE_EVENT_STOP || t.sig != 0 {
		return fmt.Errorf("the copy %d is left as a zombie child of %d", c.pid, a.p.pid)
	}
	res, err := a.injectReap(c, c.tid, unix.PTRACE_O_TRACECLONE)
	if res.stopped {
		t.event, t.stopSig, t.sig = res.event, res.stopSig, res.sig
	}
	if err != nil {
		return fmt.Errorf("the copy %d is left as a zombie child of %d: %w", c.pid, a.p.pid, err)
	}
	return nil
}

// wipedRanges reads which mappings of a process are MADV_WIPEONFORK
// (VmFlags "wf" in smaps).
func wipedRanges(path string) ([]addrspace.Mapping, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseWiped(f)
}

// parseWiped parses /proc/PID/smaps and returns the mappings whose
// VmFlags include "wf".
func parseWiped(r io.Reader) ([]addrspace.Mapping, error) {
	var out []addrspace.Mapping
	err := parseSmaps(r, func(m *addrspace.Mapping, key, value string) {
		if key == "VmFlags:" && hasField(value, "wf") {
			out = append(out, *m)
		}
	})
	return out, err
}

func hasField(s, f string) bool {
	for _, x := range strings.Fields(s) {
		if x == f {
			return true
		}
	}
	return false
}

// compareCopy returns the process's mappings with the ranges that the
// copy does not hold faithfully marked Missing (split off where only part
// of a mapping is concerned), and a warning for each readable one: ranges
// absent from the copy (MADV_DONTFORK, or device memory the kernel does
// not copy) and ranges that fork wiped (MADV_WIPEONFORK).
func compareCopy(parent, child, wiped []addrspace.Mapping) ([]addrspace.Mapping, []string) {
	type piece struct {
		start, end addrspace.Addr
		why        string // "" if faithful
	}
	isWiped := func(m addrspace.Mapping) bool {
		for _, w := range wiped {
			if w.Start == m.Start && w.End == m.End {
				return true
			}
		}
		return false
	}
	var out []addrspace.Mapping
	var warns []string
	for _, pm := range parent {
		var pieces []piece
		add := func(s, e addrspace.Addr, why string) {
			if s >= e {
				return
			}
			if n := len(pieces); n > 0 && pieces[n-1].end == s && pieces[n-1].why == why {
				pieces[n-1].end = e
				return
			}
			pieces = append(pieces, piece{s, e, why})
		}
		cur := pm.Start
		i := sort.Search(len(child), func(i int) bool { return child[i].End > pm.Start })
		for ; i < len(child) && child[i].Start < pm.End; i++ {
			cm := child[i]
			add(cur, min(cm.Start, pm.End), "not in the copy (MADV_DONTFORK)")
			s, e := max(cur, cm.Start), min(cm.End, pm.End)
			why := ""
			if isWiped(cm) {
				why = "wiped in the copy (MADV_WIPEONFORK)"
			}
			add(s, e, why)
			cur = max(cur, e)
		}
		add(cur, pm.End, "not in the copy (MADV_DONTFORK)")
		for _, pc := range pieces {
			m := pm
			m.Start, m.End = pc.start, pc.end
			if m.File() {
				m.Offset += uint64(pc.start - pm.Start)
			}
			if pc.why != "" {
				m.Missing = true
				if m.Perm&addrspace.Read != 0 {
					name := m.Path
					if name == "" {
						name = "anonymous"
					}
					warns = append(warns, fmt.Sprintf("fork snapshot: %x-%x (%s) is %s: not read",
						uint64(m.Start), uint64(m.End), name, pc.why))
				}
			}
			out = append(out, m)
		}
	}
	return out, warns
}
