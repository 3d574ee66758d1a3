// Package ptrace freezes live Linux x86-64 processes with ptrace(2) and
// exposes them as an [addrspace.Space].
//
// Two ways in:
//
//   - [Attach] seizes every thread of a running process, stops it, and
//     returns a [*Process]. [Process.Detach] lets it run on exactly as
//     before (pending signals delivered, a stopped process left stopped).
//   - [Start] runs a program under ptrace at full speed (no breakpoints)
//     and [Runner.WaitExit] freezes it when it exits, with every thread in
//     its exit stop and its memory still intact; [Runner.Finish] lets it
//     exit and reports its exit status.
//   - [StartTree] does the same for the whole process tree of a program
//     (fork, vfork, clone, exec, orphans included): [Runner.Next] returns
//     each process frozen at its own exit while the others run on, and
//     [Process.Detach] lets that one finish exiting.
//
// Linux accepts ptrace requests for a tracee only from the thread that
// attached it, so each Process and Runner owns one goroutine locked to an
// OS thread that issues every ptrace and wait4 call. Memory reads do not
// need that thread (process_vm_readv and /proc/PID/mem accept any thread
// of the tracer) and may run concurrently from any goroutine.
//
// [AttachWith] with [SnapshotFork] stops the target only long enough to
// make it fork a copy-on-write copy of itself, which heapsift keeps
// stopped and reads instead (through /proc/PID/mem: pinning the shared
// pages with process_vm_readv would make the kernel copy them), while the
// target runs on; [Process.Pause] says how long the target stood still.
// Ranges that fork does not copy faithfully (MADV_DONTFORK,
// MADV_WIPEONFORK) are marked Missing. Detach kills the copy and makes
// the target reap it, stopping one of its threads for an instant. When
// the copy cannot be made (seccomp, cgroup or rlimit limits, a stopped
// process), the Process reads the stopped target directly, with a warning.
//
// The target's memory is never written. In direct mode its registers are
// not either; in fork mode, one thread's registers are set for the
// duration of one injected system call (clone; at Detach, wait4) and then
// restored, in a stop where the kernel decides on restarting the call the
// thread was interrupted in, so that it restarts exactly as it would
// have. Like any debugger attach (gdb, gcore), stopping a thread
// interrupts the system call it sleeps in: most restart transparently
// (read, poll, nanosleep, futex), but epoll_wait, sigtimedwait and a few
// others return EINTR to the program, which well-written programs retry.
//
// Always release what you froze, on every path, including panics and
// Ctrl-C. Detach is idempotent and safe to call from any goroutine:
//
//	p, err := ptrace.Attach(pid)
//	if err != nil {
//		return err
//	}
//	defer p.Detach()
//	sig := make(chan os.Signal, 1)
//	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
//	go func() { <-sig; p.Detach(); os.Exit(130) }()
//
// If heapsift dies without detaching (SIGKILL), the kernel detaches the
// tracees itself when the tracer thread exits, and a program started with
// Start or StartTree is killed (PTRACE_O_EXITKILL), every process of the
// tree with it.
package ptrace
