package ptrace

import (
	"bytes"
	"context"
	"debug/elf"
	endian "encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/arch/x86/x86asm"
	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/elfsym"
)

// Injecting a system call into a stopped thread.
//
// The thread must sit in a ptrace-stop inside the kernel's get_signal (the
// PTRACE_EVENT_STOP of our interrupt): that is where the kernel decides,
// once the tracer lets the thread go, whether to restart the system call
// the thread was interrupted in, from the registers (rax holding
// -ERESTART*, orig_rax the call's number). So the injection
//
//  1. saves the registers and sets rip to a syscall instruction, rax to
//     the call's number, its arguments, and orig_rax to -1 so that the
//     restart logic leaves the injected registers alone;
//  2. resumes with PTRACE_SYSCALL: syscall-entry-stop (checked), then the
//     call's events (PTRACE_EVENT_CLONE), then syscall-exit-stop, where
//     rax is the result;
//  3. there, PTRACE_INTERRUPT and PTRACE_CONT: the pending trap stops the
//     thread in get_signal again (PTRACE_EVENT_STOP) before it executes a
//     single user instruction, and the saved registers are put back.
//
// The thread is then exactly as before: when it is detached, the kernel
// restarts (or not) its interrupted system call as it would have. A stop
// in get_signal of another kind (a signal-delivery-stop, a group-stop) is
// as good a place to put the registers back; a signal the thread stops
// for is delivered at detach, with the original registers.

// injectTimeout bounds one injected system call; injectGrace is how long
// a thread that overran it gets to stop after PTRACE_INTERRUPT.
const (
	injectTimeout = 60 * time.Second
	injectGrace   = 2 * time.Second
)

// erestartNoIntr is -ERESTARTNOINTR: what fork returns when a signal came
// in while it copied the process (the kernel then restarts it).
const erestartNoIntr = -513

// An injection runs one system call in a stopped tracee. It runs on the
// server thread.
type injection struct {
	srv  *server
	tid  int
	site uint64 // address of a syscall instruction
	nr   uint64
	args [6]uint64
	// opts are the tracee's ptrace options, restored at the end; extra
	// are added for the system call (PTRACE_O_TRACESYSGOOD always is).
	opts, extra int
	// onEvent, if set, is called at a PTRACE_EVENT_CLONE/FORK/VFORK stop
	// with the new task's id, while the system call is in progress.
	onEvent func(child int)
	// trace, if set, is told every stop (for tests).
	trace func(format string, args ...any)
}

// injected is what an injection did.
type injected struct {
	ran   bool  // the system call ran (it may have failed)
	ret   int64 // its result, -errno on failure
	child int   // the task a clone created, 0 if none
	// stopped reports that the thread stopped in get_signal and got its
	// registers back; event and stopSig describe that stop, and sig is
	// set for a signal-delivery-stop, to deliver at detach.
	stopped             bool
	event, stopSig, sig int
}

// injection phases.
const (
	phaseEntry = iota // resumed, the system call not entered yet
	phaseCall         // in the system call
	phaseBack         // interrupted after the call, on the way to get_signal
)

// run injects the system call. The tracee's registers and options are
// put back on every path where the tracee stops again; an error says what
// went wrong (the result tells whether the call ran).
func (in *injection) run() (injected, error) {
	var res injected
	tid := in.tid
	var orig unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &orig); err != nil {
		return res, fmt.Errorf("thread %d: get registers: %w", tid, err)
	}
	regs := orig
	regs.Rip = in.site
	regs.Rax = in.nr
	regs.Orig_rax = ^uint64(0) // no system call to restart
	regs.Rdi, regs.Rsi, regs.Rdx = in.args[0], in.args[1], in.args[2]
	regs.R10, regs.R8, regs.R9 = in.args[3], in.args[4], in.args[5]
	if err := unix.PtraceSetOptions(tid, in.opts|in.extra|unix.PTRACE_O_TRACESYSGOOD); err != nil {
		return res, fmt.Errorf("thread %d: set ptrace options: %w", tid, err)
	}
	restore := func() error {
		err := unix.PtraceSetRegs(tid, &orig)
		if oerr := unix.PtraceSetOptions(tid, in.opts); err == nil {
			err = oerr
		}
		if err != nil {
			return fmt.Errorf("thread %d: restoring its registers: %w", tid, err)
		}
		var back unix.PtraceRegs
		if err := unix.PtraceGetRegs(tid, &back); err != nil || back != orig {
			return fmt.Errorf("thread %d: registers read back after the restore differ (%v)", tid, err)
		}
		return nil
	}
	trace := func(format string, args ...any) {
		if in.trace != nil {
			in.trace("thread %d: "+format, append([]any{tid}, args...)...)
		}
	}
	trace("inject %s at %#x (was at rip %#x, rax %#x, orig_rax %d)", syscallName(in.nr), in.site, orig.Rip, orig.Rax, int64(orig.Orig_rax))
	if err := unix.PtraceSetRegs(tid, &regs); err != nil {
		return res, errors.Join(fmt.Errorf("thread %d: set registers: %w", tid, err), restore())
	}
	if err := unix.PtraceSyscall(tid, 0); err != nil {
		return res, errors.Join(fmt.Errorf("thread %d: resume: %w", tid, err), restore())
	}

	phase := phaseEntry
	var callErr error // set when the thread did not run our call as planned
	restored := false
	handle := func(_ int, ws unix.WaitStatus) (bool, error) {
		if ws.Exited() || ws.Signaled() {
			return true, fmt.Errorf("thread %d: %w while heapsift injected a system call", tid, ErrExited)
		}
		if !ws.Stopped() {
			return false, nil
		}
		sig, ev := ws.StopSignal(), wsEvent(ws)
		if in.trace != nil {
			var r unix.PtraceRegs
			_ = unix.PtraceGetRegs(tid, &r)
			trace("stop %s (phase %d): rip %#x rax %#x orig_rax %d", stopName(ws), phase, r.Rip, r.Rax, int64(r.Orig_rax))
		}
		switch {
		case ev == 0 && sig == unix.SIGTRAP|0x80: // syscall-entry or -exit-stop
			var r unix.PtraceRegs
			if err := unix.PtraceGetRegs(tid, &r); err != nil {
				return true, fmt.Errorf("thread %d: get registers at a system call stop: %w", tid, err)
			}
			switch phase {
			case phaseEntry:
				phase = phaseCall
				if r.Orig_rax != in.nr || r.Rip != in.site+2 {
					// Not our call: skip it (orig_rax -1 makes the
					// kernel return -ENOSYS without running it).
					callErr = fmt.Errorf("thread %d entered system call %d at %#x, not %d at %#x",
						tid, int64(r.Orig_rax), r.Rip, in.nr, in.site+2)
					r.Orig_rax = ^uint64(0)
					if err := unix.PtraceSetRegs(tid, &r); err != nil {
						return true, fmt.Errorf("thread %d: skip system call: %w", tid, err)
					}
				}
				return false, unix.PtraceSyscall(tid, 0)
			case phaseCall:
				phase = phaseBack
				res.ran = callErr == nil
				res.ret = int64(r.Rax)
				if err := unix.PtraceInterrupt(tid); err != nil {
					return true, fmt.Errorf("thread %d: interrupt after the system call: %w", tid, err)
				}
				return false, unix.PtraceCont(tid, 0)
			}
			return false, unix.PtraceCont(tid, 0)
		case ev == unix.PTRACE_EVENT_CLONE || ev == unix.PTRACE_EVENT_FORK || ev == unix.PTRACE_EVENT_VFORK:
			if msg, err := unix.PtraceGetEventMsg(tid); err == nil && msg != 0 {
				res.child = int(msg)
				if in.onEvent != nil {
					in.onEvent(res.child)
				}
			}
			return false, unix.PtraceSyscall(tid, 0)
		case ev == 0 || ev == unix.PTRACE_EVENT_STOP:
			// In get_signal: put everything back here.
			if phase == phaseEntry {
				callErr = fmt.Errorf("thread %d stopped (%s) before the system call ran", tid, unix.SignalName(sig))
			} else if phase == phaseBack {
				var r unix.PtraceRegs
				if err := unix.PtraceGetRegs(tid, &r); err == nil && r.Rip != in.site+2 && callErr == nil {
					callErr = fmt.Errorf("thread %d came back at %#x, not after the syscall instruction at %#x", tid, r.Rip, in.site)
				}
			} else if callErr == nil {
				callErr = fmt.Errorf("thread %d stopped (%s) in the system call without a syscall-exit-stop", tid, unix.SignalName(sig))
			}
			restored = true
			if err := restore(); err != nil {
				return true, err
			}
			res.stopped, res.event, res.stopSig = true, ev, int(sig)
			if ev == 0 {
				res.sig = int(sig)
			}
			return true, nil
		}
		// An event we did not ask for: let the call go on.
		if phase == phaseBack {
			return false, unix.PtraceCont(tid, 0)
		}
		return false, unix.PtraceSyscall(tid, 0)
	}

	ctx, cancel := context.WithTimeout(context.Background(), injectTimeout)
	err := in.srv.wait(ctx, tid, 0, handle, nil)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) && !restored {
		// The call overran: stop the thread wherever it is and put the
		// registers back at its next stop in get_signal.
		_ = unix.PtraceInterrupt(tid)
		ctx, cancel := context.WithTimeout(context.Background(), injectGrace)
		err = errors.Join(fmt.Errorf("thread %d: the injected system call did not return within %v", tid, injectTimeout),
			in.srv.wait(ctx, tid, 0, handle, nil))
		cancel()
	}
	if err == nil && !restored {
		err = fmt.Errorf("thread %d: registers not restored", tid)
	}
	if err == nil {
		err = callErr
	}
	return res, err
}

// stopName describes a ptrace-stop for traces.
func stopName(ws unix.WaitStatus) string {
	sig, ev := ws.StopSignal(), wsEvent(ws)
	switch {
	case ev == 0 && sig == unix.SIGTRAP|0x80:
		return "syscall-stop"
	case ev == 0:
		return fmt.Sprintf("signal-delivery-stop (%v)", sig)
	case ev == unix.PTRACE_EVENT_STOP:
		return fmt.Sprintf("PTRACE_EVENT_STOP (%v)", sig)
	case ev == unix.PTRACE_EVENT_CLONE:
		return "PTRACE_EVENT_CLONE"
	case ev == unix.PTRACE_EVENT_FORK:
		return "PTRACE_EVENT_FORK"
	}
	return fmt.Sprintf("event %d (%v)", ev, sig)
}

// Threads sleeping in these system calls replace their signal mask for
// the call (pselect6, ppoll, epoll_pwait, epoll_pwait2, rt_sigsuspend,
// io_pgetevents, io_uring_enter). The kernel restores the mask when such a
// thread returns to user mode, which an injection makes it do early: a
// signal that the call's mask blocked could then interrupt the call,
// where it would have waited. They are injected into only as a last resort.
var maskSwappingCalls = map[uint64]bool{270: true, 271: true, 281: true, 441: true, 130: true, 333: true, 426: true}

// rseqConfig is struct ptrace_rseq_configuration.
type rseqConfig struct {
	abiPointer uint64
	abiSize    uint32
	signature  uint32
	flags      uint32
	_          uint32
}

// inRseqCS reports whether rip of the stopped tracee tid may be inside a
// restartable-sequence critical section. The kernel moves such a thread
// to the section's abort handler when it preempts it, by looking at the
// rseq_cs pointer in the thread's struct rseq; running an injected call
// clears that pointer (the injected rip is outside the section), so the
// thread would resume in the middle of its section. ok is false if that
// cannot be told (no PTRACE_GET_RSEQ_CONFIGURATION before Linux 5.13).
func (p *Process) inRseqCS(tid int, rip uint64) (in, ok bool) {
	var conf rseqConfig
	n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GET_RSEQ_CONFIGURATION, uintptr(tid),
		unsafe.Sizeof(conf), uintptr(unsafe.Pointer(&conf)), 0, 0)
	if e != 0 || n < 8 {
		return false, false
	}
	if conf.abiPointer == 0 {
		return false, true
	}
	// struct rseq: u32 cpu_id_start, u32 cpu_id, u64 rseq_cs, ...
	cs, err := addrspace.ReadUint64(p, addrspace.Addr(conf.abiPointer+8))
	if err != nil {
		return false, false
	}
	if cs == 0 {
		return false, true
	}
	// struct rseq_cs: u32 version, u32 flags, u64 start_ip,
	// u64 post_commit_offset, u64 abort_ip.
	b, err := addrspace.ReadFull(p, addrspace.Addr(cs), 32)
	if err != nil {
		return false, false
	}
	start, length := endian.LittleEndian.Uint64(b[8:]), endian.LittleEndian.Uint64(b[16:])
	return rip-start < length, true
}

// syscallSite finds a syscall instruction (0f 05) in the target's code,
// for injected system calls, and says where it is. It decodes functions
// from their first byte, as read from the target's memory, so that the
// address is an instruction boundary: first the small system call
// wrappers of libc (syscall, getpid...) located by their ELF symbols, in
// libc, then the executable (static programs), then any other module;
// then any function of those; then the vdso's functions; and last the
// instruction that a thread sleeping in a system call entered by.
func (p *Process) syscallSite() (uint64, string, error) {
	mods := addrspace.Modules(p.maps)
	rank := func(m addrspace.Module) int {
		base := filepath.Base(m.Path)
		switch {
		case strings.HasPrefix(base, "libc.so") || strings.HasPrefix(base, "libc-"):
			return 0
		case m.Path == p.info.Executable:
			return 1
		}
		return 2
	}
	sort.SliceStable(mods, func(i, j int) bool { return rank(mods[i]) < rank(mods[j]) })
	for _, anyFunc := range []bool{false, true} {
		for _, mod := range mods {
			if site, name, ok := p.syscallInModule(mod, anyFunc); ok {
				return site, fmt.Sprintf("%s in %s", name, mod.Path), nil
			}
		}
	}
	for _, m := range p.maps {
		if m.Path == "[vdso]" && m.Perm&addrspace.Read != 0 {
			if site, name, ok := p.syscallInVDSO(m); ok {
				return site, fmt.Sprintf("%s in the vdso", name), nil
			}
		}
	}
	for _, t := range p.threads {
		if int64(t.Regs.OrigRax) >= 0 && t.Regs.Rip >= 2 {
			site := t.Regs.Rip - 2
			if b, err := addrspace.ReadFull(p, addrspace.Addr(site), 2); err == nil && b[0] == 0x0f && b[1] == 0x05 && p.executable(site, 2, "") {
				return site, fmt.Sprintf("the system call of thread %d", t.TID), nil
			}
		}
	}
	return 0, "", errors.New("no syscall instruction found in the target's code")
}

// syscallWrappers are functions of libc that consist of little more than
// a syscall instruction.
var syscallWrappers = []string{"syscall", "getpid", "__getpid", "getppid", "sched_yield", "__sched_yield", "getuid", "sync"}

// maxFuncScan bounds the functions decoded per module when looking
// beyond the wrappers.
const maxFuncScan = 4096

// syscallInModule looks for a syscall instruction in the functions of
// one module.
func (p *Process) syscallInModule(mod addrspace.Module, anyFunc bool) (uint64, string, bool) {
	f, err := p.OpenFile(mod.Path)
	if err != nil {
		return 0, "", false
	}
	defer f.Close()
	ef, err := elfsym.Open(f)
	if err != nil {
		return 0, "", false
	}
	bias := uint64(mod.Start) - ef.LinkBase()
	if !anyFunc {
		for _, name := range syscallWrappers {
			if s, ok := ef.Lookup(name); ok && s.Type == elf.STT_FUNC {
				if site, ok := p.syscallInFunc(bias+s.Value, s.Size, mod.Path); ok {
					return site, name, true
				}
			}
		}
		return 0, "", false
	}
	var syms []elf.Symbol
	if ss, err := ef.ELF().DynamicSymbols(); err == nil {
		syms = append(syms, ss...)
	}
	if ss, err := ef.ELF().Symbols(); err == nil {
		syms = append(syms, ss...)
	}
	n := 0
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF || s.Size == 0 {
			continue
		}
		if n++; n > maxFuncScan {
			break
		}
		if site, ok := p.syscallInFunc(bias+s.Value, s.Size, mod.Path); ok {
			return site, s.Name, true
		}
	}
	return 0, "", false
}

// syscallInVDSO looks for a syscall instruction in the vdso's functions
// (their fallbacks to the real system call), reading its ELF image from
// the target's memory.
func (p *Process) syscallInVDSO(m addrspace.Mapping) (uint64, string, bool) {
	img, err := addrspace.ReadFull(p, m.Start, int(min(m.Size(), 1<<20)))
	if err != nil {
		return 0, "", false
	}
	ef, err := elfsym.Open(bytes.NewReader(img))
	if err != nil {
		return 0, "", false
	}
	syms, err := ef.ELF().DynamicSymbols()
	if err != nil {
		return 0, "", false
	}
	bias := uint64(m.Start) - ef.LinkBase()
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Section == elf.SHN_UNDEF || s.Size == 0 {
			continue
		}
		if site, ok := p.syscallInFunc(bias+s.Value, s.Size, m.Path); ok {
			return site, s.Name, true
		}
	}
	return 0, "", false
}

// syscallInFunc decodes the function at addr (size bytes, as the target
// has it in memory) and returns its first syscall instruction.
func (p *Process) syscallInFunc(addr, size uint64, path string) (uint64, bool) {
	size = min(size, 4096)
	if size < 2 || !p.executable(addr, size, path) {
		return 0, false
	}
	code, err := addrspace.ReadFull(p, addrspace.Addr(addr), int(size))
	if err != nil {
		return 0, false
	}
	for pc := 0; pc < len(code); {
		inst, err := x86asm.Decode(code[pc:], 64)
		if err != nil || inst.Len == 0 {
			return 0, false
		}
		if inst.Op == x86asm.SYSCALL && inst.Len == 2 && code[pc] == 0x0f && code[pc+1] == 0x05 {
			return addr + uint64(pc), true
		}
		pc += inst.Len
	}
	return 0, false
}

// executable reports whether [addr, addr+size) lies in one executable
// mapping (of path, if path is not "").
func (p *Process) executable(addr, size uint64, path string) bool {
	m := addrspace.Find(p.maps, addrspace.Addr(addr))
	return m != nil && m.Perm&addrspace.Exec != 0 && m.Perm&addrspace.Read != 0 &&
		addr+size <= uint64(m.End) && addr+size > addr && (path == "" || m.Path == path)
}
