package ptrace

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// pollInterval bounds how long a ptrace event can go unnoticed if a
// SIGCHLD is lost (for example if something in the process sets SIGCHLD
// to SIG_IGN). Normally every event is picked up at once via SIGCHLD.
const pollInterval = 200 * time.Millisecond

// errStopped is returned by do after the server has stopped.
var errStopped = errors.New("ptrace thread stopped")

// A server owns one OS thread, the tracer: Linux accepts ptrace requests
// for a tracee only from the thread that attached it, and wait4 with
// __WNOTHREAD sees only that thread's tracees and children. Every ptrace
// and wait4 call of a Process or Runner runs on its server.
//
// Besides running closures, an idle server drains wait4 events and hands
// them to events (if set), so that a running program's signals are passed
// on at once, whether or not anybody is waiting for it.
type server struct {
	reqs     chan func()
	quit     chan struct{}
	done     chan struct{}
	sigchld  chan os.Signal
	stopOnce sync.Once

	// events receives wait4 results while the server is idle. Only
	// touched on the server thread.
	events func(tid int, ws unix.WaitStatus)
	// idle, if set, runs on the server thread at every poll tick, after
	// the pending events.
	idle func()
	// tid is the server thread's id, the tracer of its tracees. Set
	// before the first request runs.
	tid int
}

func newServer() *server {
	s := &server{
		reqs:    make(chan func()),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		sigchld: make(chan os.Signal, 1),
	}
	// Every ptrace-stop and exit of a tracee sends SIGCHLD to the
	// tracer's process; that is what wakes the server, so that no call
	// ever blocks in wait4 and every request stays responsive.
	signal.Notify(s.sigchld, unix.SIGCHLD)
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			s.run()
			return
		}
		// This is the main thread, which the runtime parks instead of
		// terminating when a locked goroutine exits (see run). Start
		// the server from here: while this goroutine holds the main
		// thread, the server cannot land on it.
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread()
			close(locked)
			s.run()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
	return s
}

// run serves requests. It must be called locked to a thread other than
// the main thread, and never unlocks it: when run returns, the thread
// exits with it, so that a ptrace link left behind on some error path is
// released by the kernel (which detaches, or kills with
// PTRACE_O_EXITKILL) instead of leaking to a thread that would run other
// goroutines.
func (s *server) run() {
	s.tid = unix.Gettid()
	defer close(s.done)
	defer signal.Stop(s.sigchld)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		select {
		case f := <-s.reqs:
			f()
		case <-s.sigchld:
			s.drain()
		case <-tick.C:
			s.drain()
			if s.idle != nil {
				s.idle()
			}
		case <-s.quit:
			return
		}
	}
}

// drain passes every pending wait4 event to s.events.
func (s *server) drain() {
	for s.events != nil {
		tid, ws, err := s.poll(-1, 0)
		if err != nil || tid == 0 {
			return
		}
		s.events(tid, ws)
	}
}

// poll is a non-blocking wait4 for a tracee or child of this thread.
func (s *server) poll(pid, flags int) (int, unix.WaitStatus, error) {
	var ws unix.WaitStatus
	for {
		tid, err := unix.Wait4(pid, &ws, unix.WALL|unix.WNOTHREAD|unix.WNOHANG|flags, nil)
		if err == unix.EINTR {
			continue
		}
		return tid, ws, err
	}
}

// do runs f on the server thread and returns its error. A panic in f is
// returned as an error, so that the caller can still release the target.
func (s *server) do(f func() error) error {
	errc := make(chan error, 1)
	g := func() {
		defer func() {
			if r := recover(); r != nil {
				errc <- fmt.Errorf("ptrace: internal error: %v", r)
			}
		}()
		errc <- f()
	}
	select {
	case s.reqs <- g:
		return <-errc
	case <-s.done:
		return errStopped
	}
}

// stop ends the server and waits for its thread to exit. It is
// idempotent, and must not be called on the server thread.
func (s *server) stop() {
	s.stopOnce.Do(func() { close(s.quit) })
	<-s.done
}

// wait blocks, on the server thread, until handle reports done or fails,
// ctx ends, or idle (called every pollInterval while nothing happens, may
// be nil) reports done or fails. It waits for pid (-1: any tracee of this
// thread) with extra wait4 flags.
func (s *server) wait(ctx context.Context, pid, flags int,
	handle func(tid int, ws unix.WaitStatus) (bool, error),
	idle func() (bool, error)) error {
	return s.waitLoop(ctx, func() (bool, error) {
		for {
			tid, ws, err := s.poll(pid, flags)
			if err != nil {
				return false, fmt.Errorf("wait4: %w", err)
			}
			if tid == 0 {
				return false, nil
			}
			if done, err := handle(tid, ws); done || err != nil {
				return true, err
			}
		}
	}, idle)
}

// waitTids is wait for a set of threads that may change as events come
// (new clones): each round polls every thread that tids returns, one by
// one. Waiting for any child (pid -1) would also take events that are not
// ours: the kernel lets a process's real parent thread wait for it as if
// it were its tracer when the tracer is another thread of the same
// process, so a server thread that happened to fork some process (a Go
// thread reused by LockOSThread) would swallow the ptrace stops that
// another server waits for.
func (s *server) waitTids(ctx context.Context, tids func() []int,
	handle func(tid int, ws unix.WaitStatus) (bool, error),
	idle func() (bool, error)) error {
	return s.waitLoop(ctx, func() (bool, error) {
		for more := true; more; {
			more = false
			for _, tid := range tids() {
				got, ws, err := s.poll(tid, 0)
				if err == unix.ECHILD {
					continue // reaped already, or not (or no longer) ours
				}
				if err != nil {
					return false, fmt.Errorf("wait4: %w", err)
				}
				if got == 0 {
					continue
				}
				more = true
				if done, err := handle(got, ws); done || err != nil {
					return true, err
				}
			}
		}
		return false, nil
	}, idle)
}

// waitLoop runs drain, which handles every pending event and says whether
// the wait is over, each time SIGCHLD arrives or pollInterval passes, and
// idle at each pollInterval, until one of them ends the wait or ctx does.
func (s *server) waitLoop(ctx context.Context, drain, idle func() (bool, error)) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		if done, err := drain(); done || err != nil {
			return err
		}
		select {
		case <-s.sigchld:
		case <-tick.C:
			if idle != nil {
				if done, err := idle(); done || err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
