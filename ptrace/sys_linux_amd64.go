package ptrace

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
)

// Raw ptrace requests that x/sys/unix does not wrap with the arguments we
// need (options at seize time, a signal at detach time, regsets).

func ptrace(req, tid int, addr, data uintptr) error {
	_, _, e := unix.Syscall6(unix.SYS_PTRACE, uintptr(req), uintptr(tid), addr, data, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// seize attaches to tid without stopping it, with ptrace options opts.
func seize(tid, opts int) error { return ptrace(unix.PTRACE_SEIZE, tid, 0, uintptr(opts)) }

// detach detaches tid, delivering sig (0: none) if tid is in a
// signal-delivery-stop.
func detach(tid, sig int) error { return ptrace(unix.PTRACE_DETACH, tid, 0, uintptr(sig)) }

// cont resumes tid, delivering sig (0: none) if tid is in a
// signal-delivery-stop.
func cont(tid, sig int) error { return ptrace(unix.PTRACE_CONT, tid, 0, uintptr(sig)) }

// listen keeps a seized tracee in group-stop but lets SIGCONT (or a new
// event) wake it, as if it were not traced.
func listen(tid int) error { return ptrace(unix.PTRACE_LISTEN, tid, 0, 0) }

// wsEvent returns the PTRACE_EVENT_* of a ptrace-stop status (0 for a
// signal-delivery-stop).
func wsEvent(ws unix.WaitStatus) int { return int(ws>>16) & 0xff }

// isStopSignal reports a signal whose default action stops the process.
func isStopSignal(sig unix.Signal) bool {
	switch sig {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return true
	}
	return false
}

// getRegs reads the general-purpose registers of a stopped tracee.
func getRegs(tid int) (addrspace.Regs, error) {
	var r unix.PtraceRegs
	if err := unix.PtraceGetRegs(tid, &r); err != nil {
		return addrspace.Regs{}, err
	}
	return addrspace.Regs{
		R15: r.R15, R14: r.R14, R13: r.R13, R12: r.R12, Rbp: r.Rbp, Rbx: r.Rbx,
		R11: r.R11, R10: r.R10, R9: r.R9, R8: r.R8, Rax: r.Rax, Rcx: r.Rcx,
		Rdx: r.Rdx, Rsi: r.Rsi, Rdi: r.Rdi, OrigRax: r.Orig_rax, Rip: r.Rip,
		Cs: r.Cs, Eflags: r.Eflags, Rsp: r.Rsp, Ss: r.Ss, FsBase: r.Fs_base,
		GsBase: r.Gs_base, Ds: r.Ds, Es: r.Es, Fs: r.Fs, Gs: r.Gs,
	}, nil
}

// vectorBufSize is larger than any XSAVE area the kernel exports today
// (about 11 KiB with AMX tile data); the kernel trims its answer to the
// real size.
const vectorBufSize = 32 << 10

// getVector reads a stopped tracee's extended register state: the XSAVE
// area (NT_X86_XSTATE), or else the 512-byte FXSAVE area (NT_PRFPREG).
// buf is scratch space of vectorBufSize bytes; the result is a copy. It
// returns nil if neither is available.
func getVector(tid int, buf []byte) []byte {
	for _, note := range []uintptr{unix.NT_X86_XSTATE, unix.NT_PRFPREG} {
		iov := unix.Iovec{Base: &buf[0]}
		iov.SetLen(len(buf))
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_GETREGSET, uintptr(tid),
			note, uintptr(unsafe.Pointer(&iov)), 0, 0)
		if e == 0 && iov.Len > 0 && iov.Len <= uint64(len(buf)) {
			return append([]byte(nil), buf[:iov.Len]...)
		}
	}
	return nil
}

// cldTrapped is CLD_TRAPPED: si_code of a ptrace-stop in waitid(2).
const cldTrapped = 4

// sigchldInfo is siginfo_t as waitid(2) fills it for a child.
type sigchldInfo struct {
	Signo, Errno, Code, _ int32
	Pid                   int32
	UID                   uint32
	Status                int32
	_                     [100]byte
}

// pendingExitStop reports whether tracee tid sits in a PTRACE_EVENT_EXIT
// stop that wait4 has not returned yet. It peeks with waitid(WNOWAIT),
// which leaves the event to be reported as usual.
func pendingExitStop(tid int) bool {
	var info sigchldInfo
	const opts = unix.WEXITED | unix.WSTOPPED | unix.WNOHANG | unix.WNOWAIT | unix.WALL | unix.WNOTHREAD
	for {
		_, _, e := unix.Syscall6(unix.SYS_WAITID, unix.P_PID, uintptr(tid), uintptr(unsafe.Pointer(&info)), opts, 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 || int(info.Pid) != tid {
			return false
		}
		return info.Code == cldTrapped && info.Status == int32(unix.SIGTRAP)|unix.PTRACE_EVENT_EXIT<<8
	}
}
