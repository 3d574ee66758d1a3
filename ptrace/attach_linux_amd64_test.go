package ptrace

import (
	"bytes"
	"context"
	endian "encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
)

func TestAttachDetach(t *testing.T) {
	tg := startTarget(t, "spin=2")
	p := attach(t, tg.pid)

	if n := len(p.Threads()); n != 3 {
		t.Errorf("got %d threads, want 3", n)
	}
	if p.Threads()[0].TID != tg.pid {
		t.Errorf("first thread is %d, want the main thread %d", p.Threads()[0].TID, tg.pid)
	}
	for tid, s := range taskStates(t, tg.pid) {
		if s != "t/us" {
			t.Errorf("thread %d: state/tracer %s while attached", tid, s)
		}
	}
	info := p.Info()
	if info.PID != tg.pid || info.Executable != tg.path || len(info.Args) != 2 || info.Args[1] != "spin=2" {
		t.Errorf("Info() = %+v", info)
	}
	if len(p.Warnings()) != 0 {
		t.Errorf("warnings: %q", p.Warnings())
	}
	var exe bool
	for _, m := range p.Mappings() {
		exe = exe || (m.Path == tg.path && m.Perm&addrspace.Exec != 0)
	}
	if !exe {
		t.Error("no executable mapping of the target binary")
	}
	f, err := p.OpenFile(tg.path)
	if err != nil {
		t.Error(err)
	} else {
		f.Close()
	}

	// Frozen: the spinning threads make no progress.
	c1 := readWord(t, p, tg.addr("counter"))
	time.Sleep(50 * time.Millisecond)
	if c2 := readWord(t, p, tg.addr("counter")); c1 != c2 {
		t.Fatalf("counter moved while attached: %d -> %d", c1, c2)
	}

	// Detach twice, concurrently: every call succeeds.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Detach()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ReadAt(make([]byte, 8), tg.addr("counter")); !errors.Is(err, ErrDetached) {
		t.Errorf("read after detach: %v, want ErrDetached", err)
	}
	for tid, s := range taskStates(t, tg.pid) {
		if s[0] == 't' || !strings.HasSuffix(s, "/0") {
			t.Errorf("thread %d: state/tracer %s after detach", tid, s)
		}
	}
	// Running again.
	waitFor(t, "the counter to move after detach", func() bool {
		p := attach(t, tg.pid)
		defer p.Detach()
		return readWord(t, p, tg.addr("counter")) > c1
	})
}

func TestAttachThreadChurn(t *testing.T) {
	tg := startTarget(t, "spin=4", "churn=12")
	var lastCreated uint64
	for round := 0; round < 5; round++ {
		p := attach(t, tg.pid)
		states := taskStates(t, tg.pid)
		threads := map[int]bool{}
		for _, th := range p.Threads() {
			threads[th.TID] = true
		}
		if len(threads) < 17 {
			t.Errorf("round %d: %d threads, want at least 17", round, len(threads))
		}
		for tid, s := range states {
			if s != "t/us" {
				t.Errorf("round %d: thread %d escaped: state/tracer %s", round, tid, s)
			}
			if !threads[tid] {
				t.Errorf("round %d: thread %d is not in Threads()", round, tid)
			}
		}
		for tid := range threads {
			if _, ok := states[tid]; !ok {
				t.Errorf("round %d: thread %d in Threads() does not exist", round, tid)
			}
		}
		created := readWord(t, p, tg.addr("created"))
		counter := readWord(t, p, tg.addr("counter"))
		time.Sleep(30 * time.Millisecond)
		if c := readWord(t, p, tg.addr("created")); c != created {
			t.Errorf("round %d: threads created while frozen: %d -> %d", round, created, c)
		}
		if c := readWord(t, p, tg.addr("counter")); c != counter {
			t.Errorf("round %d: counter moved while frozen", round)
		}
		if round > 0 && created <= lastCreated {
			t.Errorf("round %d: no thread created since the last round (%d)", round, created)
		}
		lastCreated = created
		if w := p.Warnings(); len(w) > 0 {
			t.Logf("round %d: warnings %q", round, w)
		}
		if err := p.Detach(); err != nil {
			t.Fatal(err)
		}
		// Let it run until it creates a thread (on a loaded machine that
		// can take more than a few milliseconds).
		waitFor(t, "a thread created after detach", func() bool {
			return procWord(t, tg.pid, tg.addr("created")) > created
		})
	}
}

// procWord reads a word of process pid through /proc/PID/mem, without
// attaching (heapsift's tests are the parent of their targets).
func procWord(t *testing.T, pid int, a addrspace.Addr) uint64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], int64(a)); err != nil {
		t.Fatal(err)
	}
	return endian.LittleEndian.Uint64(b[:])
}

func TestRegisters(t *testing.T) {
	tg := startTarget(t, "r12")
	p := attach(t, tg.pid)
	var found *addrspace.Thread
	threads := p.Threads()
	for i := range threads {
		if threads[i].Regs.R12 == 0x1122334455667788 {
			found = &threads[i]
		}
	}
	if found == nil {
		t.Fatalf("no thread with the known r12; threads %+v", threads)
	}
	if found.Regs.FsBase == 0 {
		t.Error("fs_base is 0")
	}
	if m := addrspace.Find(p.Mappings(), addrspace.Addr(found.Regs.Rip)); m == nil || m.Path != tg.path || m.Perm&addrspace.Exec == 0 {
		t.Errorf("rip %#x is not in the target's code: %v", found.Regs.Rip, m)
	}
	if addrspace.Find(p.Mappings(), addrspace.Addr(found.Regs.Rsp)) == nil {
		t.Errorf("rsp %#x is not mapped", found.Regs.Rsp)
	}
	if len(found.Vector) < 512 {
		t.Fatalf("vector state: %d bytes", len(found.Vector))
	}
	var xmm5 bool
	for _, w := range found.VectorWords() {
		xmm5 = xmm5 || w == 0x0badc0ffee0ddf00
	}
	if !xmm5 {
		t.Error("the known xmm5 value is not in the vector registers")
	}
	t.Logf("vector state: %d bytes", len(found.Vector))
}

func TestReadMemory(t *testing.T) {
	tg := startTarget(t)
	p := attach(t, tg.pid)
	check := func(t *testing.T) {
		// A known global.
		b := make([]byte, 26)
		if n, err := p.ReadAt(b, tg.addr("secret")); err != nil || n != len(b) || string(b) != "heapsift-secret-0123456789" {
			t.Errorf("secret: %d, %v, %q", n, err, b)
		}
		// 1 MiB of heap in one read, and pieces across page boundaries.
		heap := tg.addr("heap")
		want := make([]byte, tg.vals["heaplen"])
		for i := range want {
			want[i] = byte(i*7 + i/4096)
		}
		got := make([]byte, len(want))
		if n, err := p.ReadAt(got, heap); err != nil || n != len(got) || !bytes.Equal(got, want) {
			t.Errorf("heap: %d, %v, equal %v", n, err, bytes.Equal(got, want))
		}
		got = got[:10000]
		if n, err := p.ReadAt(got, heap+4095); err != nil || n != len(got) || !bytes.Equal(got, want[4095:4095+10000]) {
			t.Errorf("heap across pages: %d, %v", n, err)
		}
		// Unreadable memory: a PROT_NONE page, its border, page 0.
		page := addrspace.Addr(tg.vals["page"])
		none := tg.addr("guard") + page
		if n, err := p.ReadAt(make([]byte, 8), none); n != 0 || !errors.Is(err, addrspace.ErrUnreadable) {
			t.Errorf("PROT_NONE page: %d, %v", n, err)
		}
		b = make([]byte, 20)
		if n, err := p.ReadAt(b, none-10); n != 10 || !errors.Is(err, addrspace.ErrUnreadable) || !bytes.Equal(b[:10], bytes.Repeat([]byte{0x5a}, 10)) {
			t.Errorf("read into a PROT_NONE page: %d, %v, % x", n, err, b[:10])
		} else if !strings.Contains(err.Error(), none.String()) {
			t.Errorf("error does not name the address %v: %v", none, err)
		}
		if n, err := p.ReadAt(make([]byte, 8), 0); n != 0 || !errors.Is(err, addrspace.ErrUnreadable) {
			t.Errorf("address 0: %d, %v", n, err)
		}
		if n, err := p.ReadAt(make([]byte, 16), ^addrspace.Addr(7)); n != 0 || !errors.Is(err, addrspace.ErrUnreadable) {
			t.Errorf("wrap-around: %d, %v", n, err)
		}
		// Many goroutines at once.
		var wg sync.WaitGroup
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for i := 0; i < 200; i++ {
					off := (g*131 + i*4099) % (len(want) - len(buf))
					if _, err := p.ReadAt(buf, heap+addrspace.Addr(off)); err != nil || !bytes.Equal(buf, want[off:off+len(buf)]) {
						t.Errorf("concurrent read at +%d: %v", off, err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	t.Run("process_vm_readv", check)
	p.noVMReadv.Store(true)
	t.Run("proc_mem", check)
}

func TestReadBatch(t *testing.T) {
	tg := startTarget(t)
	p := attach(t, tg.pid)
	heap := tg.addr("heap")
	heaplen := int(tg.vals["heaplen"])
	page := addrspace.Addr(tg.vals["page"])
	none := tg.addr("guard") + page
	want := func(off, n int) []byte {
		b := make([]byte, n)
		for i := range b {
			j := off + i
			b[i] = byte(j*7 + j/4096)
		}
		return b
	}
	for _, mode := range []string{"process_vm_readv", "proc_mem"} {
		t.Run(mode, func(t *testing.T) {
			p.noVMReadv.Store(mode == "proc_mem")
			var reqs []Req
			bad := map[int]bool{}
			for i := 0; i < 3000; i++ {
				size := 16 + i%200
				off := (i * 337) % (heaplen - size)
				reqs = append(reqs, Req{Addr: heap + addrspace.Addr(off), Buf: make([]byte, size)})
				switch i % 500 {
				case 100: // in the PROT_NONE page
					reqs[i].Addr = none + 8
					bad[i] = true
				case 200: // straddles into it
					reqs[i].Addr = none - 8
					bad[i] = true
				case 300: // unmapped
					reqs[i].Addr = 8
					bad[i] = true
				case 400: // empty
					reqs[i].Buf = nil
				}
			}
			err := p.ReadBatch(reqs)
			if !errors.Is(err, addrspace.ErrUnreadable) {
				t.Fatalf("ReadBatch: %v, want ErrUnreadable", err)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("%d of %d", len(bad), len(reqs))) {
				t.Errorf("error does not count failures: %v", err)
			}
			for i, r := range reqs {
				if bad[i] {
					if !errors.Is(r.Err, addrspace.ErrUnreadable) {
						t.Errorf("req %d at %v: %v, want ErrUnreadable", i, r.Addr, r.Err)
					}
					continue
				}
				if r.Err != nil {
					t.Errorf("req %d at %v: %v", i, r.Addr, r.Err)
				} else if !bytes.Equal(r.Buf, want(int(r.Addr-heap), len(r.Buf))) {
					t.Errorf("req %d at %v: wrong bytes", i, r.Addr)
				}
			}
			if err := p.ReadBatch(reqs[:50]); err != nil {
				t.Errorf("all-good batch: %v", err)
			}
		})
	}
}

func TestAttachErrors(t *testing.T) {
	// A pid that no longer exists.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	for _, pid := range []int{cmd.Process.Pid, 0, -5} {
		_, err := Attach(pid)
		if !errors.Is(err, ErrNoProcess) || !strings.Contains(err.Error(), fmt.Sprintf("no process with pid %d", pid)) {
			t.Errorf("Attach(%d): %v, want ErrNoProcess", pid, err)
		}
	}

	// Ourselves, by pid and by the id of one of our threads.
	for _, pid := range []int{os.Getpid(), unix.Gettid()} {
		if _, err := Attach(pid); !errors.Is(err, ErrSelf) {
			t.Errorf("Attach(%d) (self): %v, want ErrSelf", pid, err)
		}
	}

	// A process that is already traced: EPERM, naming the tracer.
	tg := startTarget(t)
	attach(t, tg.pid)
	_, err := Attach(tg.pid)
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "heapsift itself") {
		t.Errorf("second Attach: %v, want ErrPermission naming the tracer", err)
	} else {
		t.Log(err)
	}

	// A kernel thread.
	if st, err := readStat("/proc/2/stat"); err == nil && st.flags&pfKthread != 0 {
		if _, err := Attach(2); !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "kernel thread") {
			t.Errorf("Attach(2) (kernel thread): %v", err)
		}
	}

	// A cancelled context releases what was seized.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tg2 := startTarget(t, "spin=2")
	if _, err := AttachContext(ctx, tg2.pid); !errors.Is(err, context.Canceled) {
		t.Errorf("AttachContext(cancelled): %v", err)
	}
	waitFor(t, "threads released after a cancelled attach", func() bool {
		for _, s := range taskStates(t, tg2.pid) {
			if !strings.HasSuffix(s, "/0") || s[0] == 't' {
				return false
			}
		}
		return true
	})
}

// allStopped reports whether every thread of pid is in group-stop,
// untraced.
func allStopped(t *testing.T, pid int) func() bool {
	return func() bool {
		for _, s := range taskStates(t, pid) {
			if s != "T/0" {
				return false
			}
		}
		return true
	}
}

// stopLikeShell stops pid with SIGSTOP and, as its parent (like a shell),
// consumes its stop report.
func stopLikeShell(t *testing.T, pid int) {
	t.Helper()
	if err := unix.Kill(pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil); err != nil || !ws.Stopped() {
		t.Fatalf("wait4: %v, status %#x", err, uint32(ws))
	}
	waitFor(t, "SIGSTOP", allStopped(t, pid))
}

func TestAttachStoppedStaysStopped(t *testing.T) {
	tg := startTarget(t, "spin=2")
	stopLikeShell(t, tg.pid)

	p := attach(t, tg.pid)
	if n := len(p.Threads()); n != 3 {
		t.Errorf("%d threads, want 3", n)
	}
	c1 := readWord(t, p, tg.addr("counter"))
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	// Detached threads pass through R inside the kernel, back into the
	// group-stop; then they stay there.
	waitFor(t, "the group-stop after detach", allStopped(t, tg.pid))
	for i := 0; i < 20; i++ {
		if !allStopped(t, tg.pid)() {
			t.Fatalf("not stopped after detach: %v", taskStates(t, tg.pid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The parent saw nothing, and no user code ran.
	var ws unix.WaitStatus
	if wp, err := unix.Wait4(tg.pid, &ws, unix.WUNTRACED|unix.WCONTINUED|unix.WNOHANG, nil); wp != 0 || err != nil {
		t.Errorf("the parent got a report: %d, %v, status %#x", wp, err, uint32(ws))
	}
	p = attach(t, tg.pid)
	if c2 := readWord(t, p, tg.addr("counter")); c2 != c1 {
		t.Errorf("the stopped process ran: counter %d -> %d", c1, c2)
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group-stop after detach", allStopped(t, tg.pid))

	if err := unix.Kill(tg.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGCONT", func() bool { return processState(tg.pid) != 'T' })
	waitFor(t, "the counter to move", func() bool {
		p := attach(t, tg.pid)
		defer p.Detach()
		return readWord(t, p, tg.addr("counter")) > c1
	})
}

func TestStopWhileAttached(t *testing.T) {
	tg := startTarget(t, "spin=2")
	p := attach(t, tg.pid)
	if err := unix.Kill(tg.pid, unix.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the pending SIGSTOP to stop the process", allStopped(t, tg.pid))
	if err := unix.Kill(tg.pid, unix.SIGCONT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "SIGCONT", func() bool { return processState(tg.pid) != 'T' })
}

func TestSignalWhileAttachedIsDelivered(t *testing.T) {
	file := filepath.Join(t.TempDir(), "signals")
	tg := startTarget(t, "sigfile="+file)
	p := attach(t, tg.pid)
	if err := unix.Kill(tg.pid, unix.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := readWord(t, p, tg.addr("usr1")); n != 0 {
		t.Fatalf("the handler ran while the process was frozen (%d)", n)
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SIGUSR1 handler", func() bool {
		b, _ := os.ReadFile(file)
		return string(b) == "U"
	})
}

// TestSignalDuringAttachNotLost attaches repeatedly to a thread that raises
// signals at itself without pause, so that attach often finds it in a
// signal-delivery-stop; no signal may be lost.
func TestSignalDuringAttachNotLost(t *testing.T) {
	tg := startTarget(t, "raiser")
	caught := 0
	for i := 0; i < 100; i++ {
		p := attach(t, tg.pid)
		for _, tr := range p.att.tracees {
			if tr.sig != 0 {
				if tr.sig != int(unix.SIGUSR2) {
					t.Errorf("thread %d stopped for signal %d", tr.tid, tr.sig)
				}
				caught++
			}
		}
		if err := p.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tg.stdin.Write([]byte("stop-raiser\n")); err != nil {
		t.Fatal(err)
	}
	var sent, handled uint64
	if _, err := fmt.Sscanf(tg.line(t), "sent=%d handled=%d", &sent, &handled); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 100 attaches found a signal-delivery-stop; %d signals sent", caught, sent)
	if sent != handled {
		t.Errorf("sent %d signals, handled %d", sent, handled)
	}
	if caught == 0 {
		t.Log("no attach hit a signal-delivery-stop: that path was not exercised")
	}
}

func TestZombieMainThread(t *testing.T) {
	tg := startTarget(t, "exit-main", "spin=2")
	waitFor(t, "the main thread to exit", func() bool { return processState(tg.pid) == 'Z' })
	p := attach(t, tg.pid)
	threads := p.Threads()
	if len(threads) != 2 {
		t.Errorf("%d threads, want 2", len(threads))
	}
	for _, th := range threads {
		if th.TID == tg.pid {
			t.Error("the exited main thread is listed")
		}
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], "main thread") {
		t.Errorf("warnings %q", w)
	}
	if p.Info().Executable != tg.path || len(p.Mappings()) == 0 {
		t.Errorf("info %+v, %d mappings", p.Info(), len(p.Mappings()))
	}
	b := make([]byte, 15)
	if _, err := p.ReadAt(b, tg.addr("secret")); err != nil || string(b) != "heapsift-secret" {
		t.Errorf("read: %v %q", err, b)
	}
}

func TestTargetKilledWhileAttached(t *testing.T) {
	tg := startTarget(t, "spin=3")
	p := attach(t, tg.pid)
	if err := unix.Kill(tg.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the memory to go", func() bool {
		_, err := p.ReadAt(make([]byte, 8), tg.addr("secret"))
		return errors.Is(err, ErrExited) || errors.Is(err, addrspace.ErrUnreadable)
	})
	if err := p.Detach(); err != nil {
		t.Errorf("Detach of a killed process: %v", err)
	}
	// No traced zombie is left behind. (Here the test is both the parent
	// and the tracer, so the tracer reaps the process entirely; a real
	// parent would get its exit status after that.)
	waitFor(t, "no traced thread", func() bool {
		for _, s := range taskStates(t, tg.pid) {
			if strings.HasSuffix(s, "/us") {
				return false
			}
		}
		return true
	})
}

// TestDeletedExecutable attaches to a program whose binary was deleted
// (as after a package upgrade): the mapping is marked Deleted and OpenFile
// still returns the file the program runs.
func TestDeletedExecutable(t *testing.T) {
	orig, err := os.ReadFile(binary(t, "target"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "target-copy")
	if err := os.WriteFile(path, orig, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(path)
	stdin, _ := cmd.StdinPipe() // keeps the target waiting
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	waitFor(t, "the target to start", func() bool {
		exe, _ := os.Readlink(procDir(cmd.Process.Pid) + "/exe")
		return exe == path
	})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	p := attach(t, cmd.Process.Pid)
	if p.Info().Executable != path {
		t.Errorf("Executable %q, want %q", p.Info().Executable, path)
	}
	if w := p.Warnings(); len(w) != 1 || !strings.Contains(w[0], "deleted") {
		t.Errorf("warnings %q", w)
	}
	deleted := false
	for _, m := range p.Mappings() {
		if m.Path == path {
			deleted = m.Deleted
		}
	}
	if !deleted {
		t.Error("the executable's mappings are not marked deleted")
	}
	f, err := p.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make([]byte, len(orig))
	if _, err := f.ReadAt(got, 0); err != nil || !bytes.Equal(got, orig) {
		t.Errorf("OpenFile of the deleted executable: %v, equal %v", err, bytes.Equal(got, orig))
	}
	if _, err := p.OpenFile("relative/path"); err == nil {
		t.Error("OpenFile of a relative path succeeded")
	}
}
