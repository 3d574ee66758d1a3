package ptrace

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heapsift/heapsift/addrspace"
)

// A Process is a frozen process: every one of its threads sits in a
// ptrace-stop, so its memory, mappings and registers do not change. It
// implements addrspace.Space.
//
// The accessors and memory reads may be called from any goroutine,
// concurrently. Release the process with Detach, on every path.
type Process struct {
	pid      int
	dir      string // /proc/PID/task/TID of a thread that was live at freeze time
	info     addrspace.Info
	maps     []addrspace.Mapping
	threads  []addrspace.Thread
	warnings []string

	memTID    int      // the thread whose address space process_vm_readv reads
	mem       *os.File // its /proc/.../mem, or nil
	memOnce   sync.Once
	noVMReadv atomic.Bool
	released  atomic.Bool
	gone      atomic.Pointer[error] // why the process is gone, once it is (see Gone)
	batch     sync.Pool             // *batchBufs, ReadBatch's scratch

	// For a process frozen at its exit by a Runner.
	atExit     bool
	exiting    ExitStatus // how it ends, from its exit stop
	sharedWith int        // a live process sharing its address space

	att        *attacher    // for a process from Attach
	mode       SnapshotMode // how a process from Attach is read
	copy       *forkCopy    // the frozen copy of a fork snapshot, or nil
	pauseStart time.Time    // the first PTRACE_INTERRUPT of Attach
	pause      atomic.Int64 // nanoseconds the target stood still, once it runs again
	cleanup    atomic.Int64 // nanoseconds one thread stood still to reap the copy
	release    func() error // detaches, or lets the exiting program go
	once       sync.Once
	releaseErr error
}

var (
	_ addrspace.Space     = (*Process)(nil)
	_ addrspace.Vanishing = (*Process)(nil)
)

// Gone returns an error wrapping ErrExited once the process whose memory
// is read has died (it was killed while frozen), and nil while it lives.
func (p *Process) Gone() error {
	if e := p.gone.Load(); e != nil {
		return *e
	}
	return nil
}

// checkGone records that the process has died, when a read failed and
// its /proc entry is gone, or it is a zombie.
func (p *Process) checkGone() {
	if p.gone.Load() != nil {
		return
	}
	if st, err := readStat(procDir(p.memTID) + "/stat"); err == nil && st.state != 'Z' && st.state != 'X' {
		return
	}
	p.markGone()
}

// markGone records that the process has died.
func (p *Process) markGone() {
	e := fmt.Errorf("pid %d died while heapsift read it: %w", p.pid, ErrExited)
	p.gone.CompareAndSwap(nil, &e)
}

// Info describes the process: pid, executable and command line.
func (p *Process) Info() addrspace.Info {
	info := p.info
	info.Args = slices.Clone(info.Args)
	return info
}

// Mappings returns a copy of the mappings, sorted by address, as they
// were when the process was frozen.
func (p *Process) Mappings() []addrspace.Mapping { return slices.Clone(p.maps) }

// Threads returns every frozen thread with its registers. The first one
// is the thread that represents the process: the one that died of a
// fatal signal if any, else the main thread if it is still alive.
func (p *Process) Threads() []addrspace.Thread { return slices.Clone(p.threads) }

// Warnings lists what could not be frozen faithfully, such as threads
// that vanished while heapsift attached.
func (p *Process) Warnings() []string { return slices.Clone(p.warnings) }

// Exiting reports how a process that a Runner froze at its exit is
// ending: its exit code, or the signal that kills it. ok is false for a
// process from Attach.
func (p *Process) Exiting() (s ExitStatus, ok bool) { return p.exiting, p.atExit }

// SharesMemoryWith returns the pid of another traced process, still
// running, that shares this process's address space, or 0. That happens
// with a vfork (or clone(CLONE_VM)) child that exits without exec: its
// heap is its parent's, best analyzed when the last process using it
// exits. Only a Runner from StartTree sets it.
func (p *Process) SharesMemoryWith() int { return p.sharedWith }

// Detach releases the process. For a process from Attach, every thread is
// detached and resumes as if nothing happened: a signal that arrived
// while heapsift attached is delivered, and a process that was stopped
// (SIGSTOP) stays stopped. For a process from Runner.WaitExit, the
// program is let go to finish exiting, like Runner.Finish.
//
// Detach is idempotent and safe to call from any goroutine, concurrently;
// every call returns the result of the first. Memory reads fail with
// ErrDetached afterwards.
func (p *Process) Detach() error {
	p.once.Do(func() {
		p.released.Store(true)
		p.releaseErr = p.release()
		p.closeMem()
	})
	return p.releaseErr
}

// closeMem closes the /proc memory file, once.
func (p *Process) closeMem() {
	p.memOnce.Do(func() {
		if p.mem != nil {
			p.mem.Close()
		}
	})
}

// OpenFile opens a file that backs a mapping, by the name the target uses.
// It looks through the target's root (/proc/PID/root, so that files in
// containers are found), then for a deleted file through the mapping
// itself (/proc/PID/map_files), then at the path as heapsift sees it.
func (p *Process) OpenFile(path string) (*os.File, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("open %q: not an absolute path", path)
	}
	for _, m := range p.maps {
		if m.Path == path && m.Deleted {
			name := fmt.Sprintf("%s/map_files/%x-%x", procDir(p.filesPID()), uint64(m.Start), uint64(m.End))
			if f, err := os.Open(name); err == nil {
				return f, nil
			}
			break
		}
	}
	if f, err := os.Open(p.dir + "/root" + path); err == nil {
		return f, nil
	}
	return os.Open(path)
}

// warnf records a warning.
func (p *Process) warnf(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

// snapshot reads, on the server thread, the registers of the stopped
// threads tids (in that order) and then the mappings and identity of the
// process, through the first thread that could be read.
func (p *Process) snapshot(tids []int) error {
	buf := make([]byte, vectorBufSize)
	for _, tid := range tids {
		regs, err := getRegs(tid)
		if err != nil {
			p.warnf("thread %d: registers not readable: %v", tid, err)
			continue
		}
		p.threads = append(p.threads, addrspace.Thread{TID: tid, Regs: regs, Vector: getVector(tid, buf)})
	}
	if len(p.threads) == 0 {
		return fmt.Errorf("%w: no thread of process %d could be read", ErrExited, p.pid)
	}
	p.memTID = p.threads[0].TID
	p.dir = taskDir(p.pid, p.memTID)
	maps, err := readMaps(p.dir + "/maps")
	if err != nil {
		return fmt.Errorf("mappings of process %d: %w", p.pid, err)
	}
	p.maps = maps
	p.info = addrspace.Info{PID: p.pid, Args: readCmdline(p.dir + "/cmdline")}
	if exe, err := os.Readlink(p.dir + "/exe"); err != nil {
		p.warnf("executable unknown: %v", err)
	} else {
		if s, ok := strings.CutSuffix(exe, deletedSuffix); ok {
			exe = s
			p.warnf("executable %s was deleted or replaced since it started", exe)
		}
		p.info.Executable = exe
	}
	if p.mem, err = os.Open(p.dir + "/mem"); err != nil {
		p.warnf("no /proc memory fallback: %v", err)
	}
	return nil
}
