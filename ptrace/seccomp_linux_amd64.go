package ptrace

import (
	endian "encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A system call injected into a thread that runs under a seccomp filter
// could kill it (SECCOMP_RET_KILL_*), raise SIGSYS in it (RET_TRAP) or wait
// for a supervisor (RET_USER_NOTIF). Before injecting, we fetch the
// thread's filters with PTRACE_SECCOMP_GET_FILTER and run them on the exact
// system call we are about to make, with a small classic-BPF interpreter.

// Seccomp filter actions (SECCOMP_RET_*), the high 16 bits of a result.
const (
	seccompRetKillProcess = 0x80000000
	seccompRetKillThread  = 0x00000000
	seccompRetTrap        = 0x00030000
	seccompRetErrno       = 0x00050000
	seccompRetUserNotif   = 0x7fc00000
	seccompRetTrace       = 0x7ff00000
	seccompRetLog         = 0x7ffc0000
	seccompRetAllow       = 0x7fff0000
	seccompRetActionFull  = 0xffff0000

	auditArchX86_64 = 0xc000003e
	// seccompDataSize is sizeof(struct seccomp_data).
	seccompDataSize = 64
	// bpfMaxInsns is BPF_MAXINSNS, the longest filter the kernel accepts.
	bpfMaxInsns = 4096
)

// seccompMode returns the Seccomp field of a thread's status: 0 none,
// 1 strict, 2 filter.
func seccompMode(pid, tid int) (int, error) {
	st, err := readStatus(taskDir(pid, tid) + "/status")
	if err != nil {
		return 0, err
	}
	switch st["Seccomp"] {
	case "", "0":
		return 0, nil
	case "1":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, fmt.Errorf("unknown seccomp mode %q", st["Seccomp"])
}

// seccompAllows reports whether the seccomp filters of the stopped tracee
// tid let the system call nr run with args from ip (the address after the
// syscall instruction). It returns an error that names the action when
// they do not, or when they cannot be read.
func seccompAllows(pid, tid int, nr uint64, args [6]uint64, ip uint64) error {
	mode, err := seccompMode(pid, tid)
	if err != nil {
		return fmt.Errorf("seccomp mode of thread %d: %w", tid, err)
	}
	switch mode {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("thread %d runs in strict seccomp mode", tid)
	}
	var data [seccompDataSize]byte
	endian.LittleEndian.PutUint32(data[0:], uint32(nr))
	endian.LittleEndian.PutUint32(data[4:], auditArchX86_64)
	endian.LittleEndian.PutUint64(data[8:], ip)
	for i, a := range args {
		endian.LittleEndian.PutUint64(data[16+8*i:], a)
	}
	result := uint32(seccompRetAllow)
	for i := 0; ; i++ {
		prog, err := seccompFilter(tid, i)
		if err == unix.ENOENT {
			if i == 0 {
				return fmt.Errorf("thread %d: seccomp filter mode without a filter", tid)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("thread %d runs under a seccomp filter that heapsift cannot read (PTRACE_SECCOMP_GET_FILTER: %v)", tid, err)
		}
		ret, err := runBPF(prog, data[:])
		if err != nil {
			return fmt.Errorf("thread %d: seccomp filter %d: %w", tid, i, err)
		}
		// The action of lowest value as a signed number wins, as in
		// the kernel's seccomp_run_filters.
		if int32(ret&seccompRetActionFull) < int32(result&seccompRetActionFull) {
			result = ret
		}
	}
	switch action := result & seccompRetActionFull; action {
	case seccompRetAllow, seccompRetLog:
		return nil
	case seccompRetErrno:
		return fmt.Errorf("a seccomp filter makes %s fail with %v", syscallName(nr), unix.Errno(result&0xffff))
	default:
		return fmt.Errorf("a seccomp filter answers %s with %s", syscallName(nr), seccompActionName(action))
	}
}

func seccompActionName(action uint32) string {
	switch action {
	case seccompRetKillProcess:
		return "KILL_PROCESS"
	case seccompRetKillThread:
		return "KILL_THREAD"
	case seccompRetTrap:
		return "TRAP (SIGSYS)"
	case seccompRetUserNotif:
		return "USER_NOTIF"
	case seccompRetTrace:
		return "TRACE"
	}
	return fmt.Sprintf("action %#x", action)
}

func syscallName(nr uint64) string {
	switch nr {
	case unix.SYS_CLONE:
		return "clone"
	case unix.SYS_WAIT4:
		return "wait4"
	}
	return fmt.Sprintf("system call %d", nr)
}

// seccompFilter returns filter i of the stopped tracee tid (0: the most
// recently installed), or ENOENT past the last one. It needs
// CAP_SYS_ADMIN.
func seccompFilter(tid, i int) ([]unix.SockFilter, error) {
	n, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(tid), uintptr(i), 0, 0, 0)
	if e != 0 {
		return nil, e
	}
	if n == 0 || n > bpfMaxInsns {
		return nil, fmt.Errorf("filter of %d instructions", n)
	}
	prog := make([]unix.SockFilter, n)
	m, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_SECCOMP_GET_FILTER, uintptr(tid), uintptr(i),
		uintptr(unsafe.Pointer(&prog[0])), 0, 0)
	if e != 0 {
		return nil, e
	}
	if m != n {
		return nil, fmt.Errorf("filter changed size while read (%d, then %d instructions)", n, m)
	}
	return prog, nil
}

// errBPF is returned for a program that the kernel would not have run.
var errBPF = errors.New("invalid BPF program")

// runBPF runs a classic BPF seccomp program on data (a struct
// seccomp_data) and returns its result. It implements the instructions
// that the kernel's seccomp_check_filter accepts.
func runBPF(prog []unix.SockFilter, data []byte) (uint32, error) {
	var a, x uint32
	var mem [16]uint32 // BPF_MEMWORDS
	for pc := 0; pc < len(prog); pc++ {
		ins := prog[pc]
		k := ins.K
		switch ins.Code {
		case unix.BPF_LD | unix.BPF_W | unix.BPF_ABS:
			if k%4 != 0 || int(k)+4 > len(data) {
				return 0, fmt.Errorf("%w: load at %d", errBPF, k)
			}
			a = endian.LittleEndian.Uint32(data[k:])
		case unix.BPF_LD | unix.BPF_W | unix.BPF_LEN:
			a = uint32(len(data))
		case unix.BPF_LDX | unix.BPF_W | unix.BPF_LEN:
			x = uint32(len(data))
		case unix.BPF_LD | unix.BPF_IMM:
			a = k
		case unix.BPF_LDX | unix.BPF_IMM:
			x = k
		case unix.BPF_LD | unix.BPF_MEM, unix.BPF_LDX | unix.BPF_MEM,
			unix.BPF_ST, unix.BPF_STX:
			if k >= uint32(len(mem)) {
				return 0, fmt.Errorf("%w: scratch word %d", errBPF, k)
			}
			switch ins.Code {
			case unix.BPF_LD | unix.BPF_MEM:
				a = mem[k]
			case unix.BPF_LDX | unix.BPF_MEM:
				x = mem[k]
			case unix.BPF_ST:
				mem[k] = a
			default:
				mem[k] = x
			}
		case unix.BPF_MISC | unix.BPF_TAX:
			x = a
		case unix.BPF_MISC | unix.BPF_TXA:
			a = x
		case unix.BPF_RET | unix.BPF_K:
			return k, nil
		case unix.BPF_RET | unix.BPF_A:
			return a, nil
		case unix.BPF_ALU | unix.BPF_NEG:
			a = -a
		case unix.BPF_JMP | unix.BPF_JA:
			if uint64(pc)+1+uint64(k) >= uint64(len(prog)) {
				return 0, fmt.Errorf("%w: jump out of the program", errBPF)
			}
			pc += int(k)
		default:
			src := k
			if ins.Code&unix.BPF_X != 0 {
				src = x
			}
			switch ins.Code &^ unix.BPF_X {
			case unix.BPF_ALU | unix.BPF_ADD:
				a += src
			case unix.BPF_ALU | unix.BPF_SUB:
				a -= src
			case unix.BPF_ALU | unix.BPF_MUL:
				a *= src
			case unix.BPF_ALU | unix.BPF_DIV:
				if src == 0 {
					return 0, nil // the kernel's interpreter returns 0 (KILL)
				}
				a /= src
			case unix.BPF_ALU | unix.BPF_MOD:
				if src == 0 {
					return 0, nil
				}
				a %= src
			case unix.BPF_ALU | unix.BPF_AND:
				a &= src
			case unix.BPF_ALU | unix.BPF_OR:
				a |= src
			case unix.BPF_ALU | unix.BPF_XOR:
				a ^= src
			case unix.BPF_ALU | unix.BPF_LSH:
				a <<= src & 31
			case unix.BPF_ALU | unix.BPF_RSH:
				a >>= src & 31
			case unix.BPF_JMP | unix.BPF_JEQ, unix.BPF_JMP | unix.BPF_JGT,
				unix.BPF_JMP | unix.BPF_JGE, unix.BPF_JMP | unix.BPF_JSET:
				var cond bool
				switch ins.Code &^ unix.BPF_X {
				case unix.BPF_JMP | unix.BPF_JEQ:
					cond = a == src
				case unix.BPF_JMP | unix.BPF_JGT:
					cond = a > src
				case unix.BPF_JMP | unix.BPF_JGE:
					cond = a >= src
				default:
					cond = a&src != 0
				}
				off := int(ins.Jf)
				if cond {
					off = int(ins.Jt)
				}
				if pc+1+off >= len(prog) {
					return 0, fmt.Errorf("%w: jump out of the program", errBPF)
				}
				pc += off
			default:
				return 0, fmt.Errorf("%w: opcode %#x", errBPF, ins.Code)
			}
		}
	}
	return 0, fmt.Errorf("%w: no return", errBPF)
}
