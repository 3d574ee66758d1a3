package ptrace

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/scan"
)

// stats asks forktarget for its counters.
func (tg *target) stats(t *testing.T) map[string]int64 {
	t.Helper()
	if _, err := tg.stdin.Write([]byte("stats\n")); err != nil {
		t.Fatal(err)
	}
	m := map[string]int64{}
	for _, kv := range strings.Fields(tg.line(t)) {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("forktarget: bad stats %q", kv)
		}
		m[k] = n
	}
	return m
}

// attachFork attaches to pid in fork mode, skipping the test if ptrace is
// not permitted, and detaches when the test ends.
func attachFork(t *testing.T, pid int, opts AttachOptions) *Process {
	t.Helper()
	opts.Snapshot = SnapshotFork
	p, err := AttachWith(context.Background(), pid, opts)
	if errors.Is(err, ErrPermission) {
		t.Skipf("ptrace not permitted here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Detach() })
	return p
}

// running reports the state of every thread of pid that is traced or
// stopped, which none should be once the target runs on.
func notRunning(t *testing.T, pid int) []string {
	var bad []string
	for tid, s := range taskStates(t, pid) {
		if s[0] == 't' || s[0] == 'T' || !strings.HasSuffix(s, "/0") {
			bad = append(bad, fmt.Sprintf("%d:%s", tid, s))
		}
	}
	return bad
}

func TestForkSnapshot(t *testing.T) {
	tg := startFixture(t, "forktarget", "mode=nanosleep")
	p := attachFork(t, tg.pid, AttachOptions{trace: t.Logf})
	if p.Snapshot() != SnapshotFork {
		t.Fatalf("Snapshot() = %v, warnings %q", p.Snapshot(), p.Warnings())
	}
	c := p.copy
	t.Logf("copy %d forked by thread %d with the syscall of %s; paused %v", c.pid, c.tid, c.where, p.Pause())
	if p.Info().PID != tg.pid || p.Threads()[0].TID != tg.pid || len(p.Threads()) != 4 {
		t.Errorf("Info %+v, %d threads, first %d", p.Info(), len(p.Threads()), p.Threads()[0].TID)
	}
	// The target runs on while the copy stands still.
	if bad := notRunning(t, tg.pid); len(bad) > 0 {
		t.Errorf("target threads still stopped or traced: %v", bad)
	}
	i1 := readWord(t, p, tg.addr("iters"))
	waitFor(t, "the target to make progress", func() bool { return tg.stats(t)["iters"] > int64(i1)+10 })
	if i2 := readWord(t, p, tg.addr("iters")); i2 != i1 {
		t.Errorf("the copy's memory changed: iters %d -> %d", i1, i2)
	}
	if st := processState(c.pid); st != 't' {
		t.Errorf("copy state %c, want t", st)
	}

	// DONTFORK and WIPEONFORK ranges are not read.
	for _, k := range []string{"dontfork", "wipe"} {
		a := tg.addr(k)
		if _, err := p.ReadAt(make([]byte, 8), a); !errors.Is(err, addrspace.ErrUnreadable) {
			t.Errorf("%s range: read %v, want ErrUnreadable", k, err)
		}
		m := addrspace.Find(p.Mappings(), a)
		if m == nil || !m.Missing || m.Start != a || m.Size() != 2*tg.vals["page"] {
			t.Errorf("%s range: mapping %v", k, m)
		}
		found := false
		for _, w := range p.Warnings() {
			found = found || strings.Contains(w, fmt.Sprintf("%x-", uint64(a)))
		}
		if !found {
			t.Errorf("no warning names the %s range %v: %q", k, a, p.Warnings())
		}
	}
	t.Logf("warnings: %q", p.Warnings())

	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cleanup paused one thread %v", p.CleanupPause())
	if _, err := os.Stat(procDir(c.pid)); err == nil {
		t.Errorf("the copy %d still exists after Detach", c.pid)
	}
	time.Sleep(20 * time.Millisecond)
	st := tg.stats(t)
	if st["eintr"] != 0 || st["bad"] != 0 || st["short"] != 0 || st["sigchld"] != 0 || st["children"] != 0 {
		t.Errorf("target disturbed: %v", st)
	}
}

// verdicts analyzes a frozen space: every chunk with its state and
// verdict, and the registers and stack pointers of every thread.
func verdicts(t *testing.T, s addrspace.Space) (map[addrspace.Addr]string, []addrspace.Thread) {
	t.Helper()
	h, err := heapwalk.Walk(s, heapwalk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	res := scan.Run(s, h, scan.Options{})
	out := map[addrspace.Addr]string{}
	for i := 0; i < h.Chunks.Len(); i++ {
		out[h.Chunks.Addr(i)] = fmt.Sprintf("%d/%d/%v", h.Chunks.Size(i), h.Chunks.State(i), res.Verdicts[i])
	}
	return out, s.Threads()
}

// TestForkSameVerdicts analyzes fixtures with known leaks directly and
// from a fork snapshot: every chunk must get the same verdict, from the
// same registers, and the fixtures' truth must hold.
func TestForkSameVerdicts(t *testing.T) {
	for _, name := range []string{"graph", "threads", "mmapped"} {
		t.Run(name, func(t *testing.T) {
			pid, truth := testprog.StartPaused(t, testprog.Build(t, name))
			d, err := AttachWith(context.Background(), pid, AttachOptions{})
			if errors.Is(err, ErrPermission) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			dv, dt := verdicts(t, d)
			d.Detach()
			f := attachFork(t, pid, AttachOptions{})
			if f.Snapshot() != SnapshotFork {
				t.Fatalf("Snapshot() = %v: %q", f.Snapshot(), f.Warnings())
			}
			fv, ft := verdicts(t, f)
			if len(dv) == 0 || len(dv) != len(fv) {
				t.Errorf("%d chunks directly, %d from the copy", len(dv), len(fv))
			}
			for a, v := range dv {
				if fv[a] != v {
					t.Errorf("chunk %v: %s directly, %s from the copy", a, v, fv[a])
				}
			}
			if len(dt) != len(ft) {
				t.Fatalf("%d threads directly, %d from the copy", len(dt), len(ft))
			}
			for i := range dt {
				if dt[i].TID != ft[i].TID || dt[i].Regs != ft[i].Regs {
					t.Errorf("thread %d: registers differ", dt[i].TID)
				}
			}
			leaked := map[uint64]string{}
			h, err := heapwalk.Walk(f, heapwalk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			res := scan.Run(f, h, scan.Options{})
			for i := 0; i < h.Chunks.Len(); i++ {
				switch res.Verdicts[i] {
				case scan.Definite:
					leaked[uint64(h.Chunks.User(i))] = testprog.KindDefinite
				case scan.Indirect:
					leaked[uint64(h.Chunks.User(i))] = testprog.KindIndirect
				case scan.Possible:
					leaked[uint64(h.Chunks.User(i))] = testprog.KindPossible
				}
			}
			for _, msg := range testprog.Check(truth, leaked) {
				t.Error(msg)
			}
			t.Logf("%d chunks, %d leaked, same verdicts; fork pause %v", len(fv), len(leaked), f.Pause())
		})
	}
}

// TestForkKeepsCallsGoing forks snapshots of a target whose main thread
// sleeps in one kind of call, or runs in user code, forcing the clone into
// that thread, and checks that the call goes on as if nothing happened.
func TestForkKeepsCallsGoing(t *testing.T) {
	const rounds = 15
	for _, mode := range []string{"nanosleep", "read", "futex", "futexto", "epoll", "ppoll", "busy"} {
		t.Run(mode, func(t *testing.T) {
			tg := startFixture(t, "forktarget", "mode="+mode)
			before := tg.stats(t)
			var pauses []time.Duration
			for i := 0; i < rounds; i++ {
				opts := AttachOptions{injectTID: tg.pid}
				if i == 0 {
					opts.trace = t.Logf
				}
				p := attachFork(t, tg.pid, opts)
				if p.Snapshot() != SnapshotFork {
					t.Fatalf("round %d: Snapshot() = %v, warnings %q", i, p.Snapshot(), p.Warnings())
				}
				regs := p.Threads()[0].Regs
				if i == 0 {
					t.Logf("main thread at rip %#x rax %#x orig_rax %d", regs.Rip, regs.Rax, int64(regs.OrigRax))
				}
				if mode == "busy" && int64(regs.OrigRax) != -1 {
					t.Errorf("round %d: busy main thread stopped in system call %d", i, int64(regs.OrigRax))
				}
				c := p.copy.pid
				pauses = append(pauses, p.Pause())
				time.Sleep(5 * time.Millisecond)
				if err := p.Detach(); err != nil {
					t.Fatalf("round %d: %v", i, err)
				}
				if _, err := os.Stat(procDir(c)); err == nil {
					t.Fatalf("round %d: the copy %d still exists after Detach", i, c)
				}
			}
			time.Sleep(30 * time.Millisecond)
			after := tg.stats(t)
			t.Logf("pauses %v; before %v; after %v", pauses, before, after)
			if after["iters"] <= before["iters"] {
				t.Errorf("no progress: iters %d -> %d", before["iters"], after["iters"])
			}
			for _, k := range []string{"bad", "short", "sigchld", "children"} {
				if after[k] != 0 {
					t.Errorf("%s = %d (lasterr %d)", k, after[k], after["lasterr"])
				}
			}
			// epoll_wait returns EINTR to any interrupt, direct mode too.
			if mode != "epoll" && after["eintr"] != 0 {
				t.Errorf("eintr = %d", after["eintr"])
			}
			if bad := notRunning(t, tg.pid); len(bad) > 0 {
				t.Errorf("target threads still stopped or traced: %v", bad)
			}
		})
	}
}

// TestForkEintrLikeDirect checks that a fork snapshot interrupts an
// epoll_wait no more than a direct attach does: once.
func TestForkEintrLikeDirect(t *testing.T) {
	tg := startFixture(t, "forktarget", "mode=epoll")
	count := func(mode SnapshotMode) int64 {
		e0 := tg.stats(t)["eintr"]
		// Let the thread that answered get back into epoll_wait: an
		// attach that finds it elsewhere interrupts nothing.
		waitFor(t, "the target back in epoll_wait", func() bool {
			b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/syscall", tg.pid, tg.pid))
			f := strings.Fields(string(b))
			return len(f) > 0 && (f[0] == "232" || f[0] == "281") // epoll_wait, epoll_pwait
		})
		p, err := AttachWith(context.Background(), tg.pid, AttachOptions{Snapshot: mode, injectTID: tg.pid})
		if err != nil {
			t.Fatal(err)
		}
		if p.Snapshot() != mode {
			t.Fatalf("Snapshot() = %v, want %v: %q", p.Snapshot(), mode, p.Warnings())
		}
		if err := p.Detach(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		return tg.stats(t)["eintr"] - e0
	}
	// The cleanup of a fork stops a thread sleeping in a call the kernel
	// restarts (here the reaper's usleep) when it finds one; on a loaded
	// machine that thread may be running just then, and the cleanup stops
	// the main thread in epoll_wait instead (a second EINTR, as designed).
	// A round whose cleanup found the sleeper must exist among a few.
	var rounds []string
	for range 3 {
		direct, fork := count(SnapshotDirect), count(SnapshotFork)
		t.Logf("EINTR from epoll_wait: direct %d, fork %d", direct, fork)
		if fork <= direct {
			return
		}
		rounds = append(rounds, fmt.Sprintf("fork %d > direct %d", fork, direct))
	}
	t.Errorf("fork mode interrupted epoll_wait more often than direct mode in every round: %v", rounds)
}

// TestForkSeccomp: a target whose seccomp filter forbids clone is read
// directly, with a warning; whether heapsift foresees the refusal or the
// kernel refuses the injected clone, the target goes on undisturbed.
func TestForkSeccomp(t *testing.T) {
	tg := startFixture(t, "forktarget", "mode=nanosleep", "seccomp")
	for _, skip := range []bool{false, true} {
		p := attachFork(t, tg.pid, AttachOptions{skipSeccompCheck: skip, trace: t.Logf})
		if p.Snapshot() != SnapshotDirect || p.copy != nil {
			t.Fatalf("skip %v: Snapshot() = %v", skip, p.Snapshot())
		}
		w := strings.Join(p.Warnings(), "\n")
		want := "seccomp filter makes clone fail with operation not permitted"
		if skip {
			want = "clone in thread"
		}
		if !strings.Contains(w, "fork snapshot failed: ") || !strings.Contains(w, want) ||
			!strings.Contains(w, "reading the stopped process directly") {
			t.Errorf("skip %v: warnings %q, want one with %q", skip, w, want)
		}
		t.Logf("skip %v: %s", skip, w)
		// Read directly: frozen, and the DONTFORK range is there.
		i1 := readWord(t, p, tg.addr("iters"))
		time.Sleep(20 * time.Millisecond)
		if i2 := readWord(t, p, tg.addr("iters")); i2 != i1 {
			t.Errorf("skip %v: the target ran while read directly", skip)
		}
		if v := readWord(t, p, tg.addr("dontfork")); v != 0x1111111111111111 {
			t.Errorf("skip %v: dontfork range reads %#x", skip, v)
		}
		if p.Pause() <= 0 {
			t.Errorf("skip %v: Pause() = %v while stopped", skip, p.Pause())
		}
		if err := p.Detach(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if st := tg.stats(t); st["eintr"] != 0 || st["bad"] != 0 || st["short"] != 0 || st["children"] != 0 || st["sigchld"] != 0 {
		t.Errorf("target disturbed: %v", st)
	}
}

// TestForkStoppedProcess: a process in a group-stop is read directly and
// stays stopped.
func TestForkStoppedProcess(t *testing.T) {
	tg := startTarget(t, "spin=2")
	stopLikeShell(t, tg.pid)
	p := attachFork(t, tg.pid, AttachOptions{})
	if p.Snapshot() != SnapshotDirect || len(p.Warnings()) != 1 || !strings.Contains(p.Warnings()[0], "is stopped") {
		t.Errorf("Snapshot() = %v, warnings %q", p.Snapshot(), p.Warnings())
	}
	if err := p.Detach(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group-stop after detach", allStopped(t, tg.pid))
	unix.Kill(tg.pid, unix.SIGCONT)
}

// TestForkSignalsNotLost forks snapshots of a thread that raises signals
// at itself without pause: none may be lost or doubled, whichever thread
// the clone lands in.
func TestForkSignalsNotLost(t *testing.T) {
	tg := startTarget(t, "raiser", "spin=1")
	forked := 0
	for i := 0; i < 60; i++ {
		opts := AttachOptions{}
		if i%2 == 1 {
			// Into the raiser itself, which is mostly in user code or
			// in a signal stop.
			for _, th := range threadsOf(t, tg.pid) {
				if th != tg.pid {
					opts.injectTID = th
				}
			}
		}
		p := attachFork(t, tg.pid, opts)
		if p.Snapshot() == SnapshotFork {
			forked++
		} else {
			t.Logf("round %d: %q", i, p.Warnings())
		}
		c := p.copy
		if err := p.Detach(); err != nil {
			t.Fatal(err)
		}
		if c != nil {
			if _, err := os.Stat(procDir(c.pid)); err == nil {
				t.Fatalf("round %d: the copy %d still exists after Detach", i, c.pid)
			}
		}
	}
	if _, err := tg.stdin.Write([]byte("stop-raiser\n")); err != nil {
		t.Fatal(err)
	}
	var sent, handled uint64
	if _, err := fmt.Sscanf(tg.line(t), "sent=%d handled=%d", &sent, &handled); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of 60 snapshots forked; %d signals sent", forked, sent)
	if sent != handled {
		t.Errorf("sent %d signals, handled %d", sent, handled)
	}
	if forked < 30 {
		t.Errorf("only %d of 60 snapshots forked", forked)
	}
}

// threadsOf lists the threads of pid.
func threadsOf(t *testing.T, pid int) []int {
	t.Helper()
	tids, err := listTasks(pid)
	if err != nil {
		t.Fatal(err)
	}
	return tids
}

// TestForkTargetExits: the target dies while its copy is read; Detach
// still cleans up.
func TestForkTargetExits(t *testing.T) {
	tg := startFixture(t, "forktarget", "mode=nanosleep")
	p := attachFork(t, tg.pid, AttachOptions{})
	if p.Snapshot() != SnapshotFork {
		t.Fatalf("Snapshot() = %v: %q", p.Snapshot(), p.Warnings())
	}
	c := p.copy.pid
	i1 := readWord(t, p, tg.addr("iters"))
	if err := unix.Kill(tg.pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the target to die", func() bool { return processState(tg.pid) == 'Z' })
	// The copy still holds the memory.
	if i2 := readWord(t, p, tg.addr("iters")); i2 != i1 {
		t.Errorf("iters %d -> %d", i1, i2)
	}
	if err := p.Detach(); err != nil {
		t.Errorf("Detach: %v", err)
	}
	// Dead, and the child of whatever reaper took the target's orphans.
	if ppid, state, ok := copyParent(c); ok && (ppid == tg.pid || state != 'Z') {
		t.Errorf("the copy %d: parent %d, state %c", c, ppid, state)
	}
}

// TestForkDetachConcurrent: Detach is idempotent and safe from many
// goroutines at once.
func TestForkDetachConcurrent(t *testing.T) {
	tg := startFixture(t, "forktarget", "mode=read")
	p := attachFork(t, tg.pid, AttachOptions{})
	if p.Snapshot() != SnapshotFork {
		t.Fatalf("Snapshot() = %v: %q", p.Snapshot(), p.Warnings())
	}
	c := p.copy.pid
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() { errs <- p.Detach() }()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if _, err := p.ReadAt(make([]byte, 8), tg.addr("iters")); !errors.Is(err, ErrDetached) {
		t.Errorf("read after Detach: %v", err)
	}
	if _, err := os.Stat(procDir(c)); err == nil {
		t.Errorf("the copy %d still exists", c)
	}
	if st := tg.stats(t); st["eintr"] != 0 || st["bad"] != 0 || st["children"] != 0 || st["sigchld"] != 0 {
		t.Errorf("target disturbed: %v", st)
	}
}

// pauseStats is struct stats of testdata/bench/pause.c.
type pauseStats struct {
	reset, seen, maxGapNS, iters, gaps1ms, heapBytes, chunks uint64
}

// A pauser is a running testdata/bench/pause.
type pauser struct {
	pid   int
	stats *pauseStats // in the shared file
}

var pauseBuild struct {
	once sync.Once
	path string
	err  error
}

// startPauser builds (once) and starts testdata/bench/pause with a heap
// of mib MiB; write makes it write its heap as it spins.
func startPauser(tb testing.TB, mib int, write bool) *pauser {
	tb.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		tb.Skip("gcc not found")
	}
	pauseBuild.once.Do(func() {
		pauseBuild.path = filepath.Join(binDir, "pause")
		cmd := exec.Command("gcc", "-O2", "-Wall", "-o", pauseBuild.path, filepath.Join("..", "testdata", "bench", "pause.c"))
		if out, err := cmd.CombinedOutput(); err != nil {
			pauseBuild.err = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if pauseBuild.err != nil {
		tb.Fatalf("build pause: %v", pauseBuild.err)
	}
	file := filepath.Join(tb.TempDir(), "stats")
	args := []string{file, strconv.Itoa(mib)}
	if write {
		args = append(args, "write")
	}
	cmd := exec.Command(pauseBuild.path, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Scan()
		ready <- sc.Text()
	}()
	select {
	case l := <-ready:
		if !strings.HasPrefix(l, "ready ") {
			tb.Fatalf("pause: %q", l)
		}
	case <-time.After(5 * time.Minute):
		tb.Fatal("pause: not ready")
	}
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		tb.Fatal(err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	f.Close()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	return &pauser{pid: cmd.Process.Pid, stats: (*pauseStats)(unsafe.Pointer(&mem[0]))}
}

// reset starts a new measurement in the pauser.
func (ps *pauser) reset(tb testing.TB) {
	r := atomic.AddUint64(&ps.stats.reset, 1)
	for deadline := time.Now().Add(10 * time.Second); atomic.LoadUint64(&ps.stats.seen) != r; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatal("pause: reset not acknowledged")
		}
	}
}

// pauseSample is one snapshot of a pauser, measured.
type pauseSample struct {
	pause   time.Duration // Process.Pause
	gap     time.Duration // the largest gap the target saw
	read    time.Duration // reading the whole heap
	cleanup time.Duration // Process.CleanupPause
	heap    uint64        // bytes read
	iters   uint64        // the target's iterations during the measurement
}

// snapshotPauser attaches to the pauser in mode, reads its whole heap
// (every anonymous writable mapping: [heap] and arenas), detaches, and
// says how long the target stood still, as heapsift and as the target
// measured it.
func snapshotPauser(tb testing.TB, ps *pauser, mode SnapshotMode) pauseSample {
	tb.Helper()
	ps.reset(tb)
	time.Sleep(20 * time.Millisecond)
	p, err := AttachWith(context.Background(), ps.pid, AttachOptions{Snapshot: mode})
	if err != nil {
		tb.Fatal(err)
	}
	if p.Snapshot() != mode {
		p.Detach()
		tb.Fatalf("Snapshot() = %v, want %v: %q", p.Snapshot(), mode, p.Warnings())
	}
	var s pauseSample
	t0 := time.Now()
	buf := make([]byte, 1<<20)
	for _, m := range p.Mappings() {
		if !m.Anonymous() || m.Perm&addrspace.Write == 0 || m.Missing || addrspace.IsStackName(m.Path) {
			continue
		}
		for a := m.Start; a < m.End; a += addrspace.Addr(len(buf)) {
			n := min(uint64(len(buf)), uint64(m.End-a))
			if _, err := p.ReadAt(buf[:n], a); err != nil {
				tb.Fatal(err)
			}
			s.heap += n
		}
	}
	s.read = time.Since(t0)
	if err := p.Detach(); err != nil {
		tb.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	s.pause, s.cleanup = p.Pause(), p.CleanupPause()
	s.gap = time.Duration(atomic.LoadUint64(&ps.stats.maxGapNS))
	s.iters = atomic.LoadUint64(&ps.stats.iters)
	return s
}

// BenchmarkForkPause compares how long a target with a big heap stands
// still while its whole heap is read: directly (the whole read) or from a
// fork snapshot (the fork only). HEAPSIFT_PAUSE_MIB sets the heap size
// (default 64), HEAPSIFT_PAUSE_WRITE=1 makes the target write its heap
// as it runs. Metrics: pause-ms (Process.Pause), gap-ms (the largest
// stall the target itself measured), read-ms, cleanup-ms.
func BenchmarkForkPause(b *testing.B) {
	mib := 64
	if v := os.Getenv("HEAPSIFT_PAUSE_MIB"); v != "" {
		var err error
		if mib, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	ps := startPauser(b, mib, os.Getenv("HEAPSIFT_PAUSE_WRITE") == "1")
	b.Logf("heap: %d MiB in %d chunks", atomic.LoadUint64(&ps.stats.heapBytes)>>20, atomic.LoadUint64(&ps.stats.chunks))
	for _, mode := range []SnapshotMode{SnapshotDirect, SnapshotFork} {
		b.Run(mode.String(), func(b *testing.B) {
			var sum pauseSample
			var worst time.Duration
			for i := 0; i < b.N; i++ {
				s := snapshotPauser(b, ps, mode)
				sum.pause += s.pause
				sum.gap += s.gap
				sum.read += s.read
				sum.cleanup += s.cleanup
				worst = max(worst, s.gap)
				sum.heap = s.heap
			}
			n := float64(b.N)
			ms := func(d time.Duration) float64 { return float64(d) / n / 1e6 }
			b.ReportMetric(ms(sum.pause), "pause-ms")
			b.ReportMetric(ms(sum.gap), "gap-ms")
			b.ReportMetric(float64(worst)/1e6, "worst-gap-ms")
			b.ReportMetric(ms(sum.read), "read-ms")
			b.ReportMetric(ms(sum.cleanup), "cleanup-ms")
			b.ReportMetric(float64(sum.heap>>20), "heap-MiB")
		})
	}
}

// sharedDirty returns Shared_Dirty of pid in kB, from smaps_rollup.
func sharedDirty(t testing.TB, pid int) int {
	b, err := os.ReadFile(procDir(pid) + "/smaps_rollup")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "Shared_Dirty:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	t.Fatalf("no Shared_Dirty in smaps_rollup of %d", pid)
	return 0
}

// TestForkReadsDoNotCopy: reading the copy must not make the kernel copy
// the pages it shares with the target (as pinning them with
// process_vm_readv would).
func TestForkReadsDoNotCopy(t *testing.T) {
	ps := startPauser(t, 16, false)
	p := attachFork(t, ps.pid, AttachOptions{})
	if p.Snapshot() != SnapshotFork {
		t.Fatalf("Snapshot() = %v: %q", p.Snapshot(), p.Warnings())
	}
	before := sharedDirty(t, p.copy.pid)
	buf := make([]byte, 1<<20)
	for _, m := range p.Mappings() {
		if m.Path != "[heap]" {
			continue
		}
		for a := m.Start; a < m.End; a += addrspace.Addr(len(buf)) {
			n := min(uint64(len(buf)), uint64(m.End-a))
			if _, err := p.ReadAt(buf[:n], a); err != nil {
				t.Fatal(err)
			}
		}
	}
	after := sharedDirty(t, p.copy.pid)
	t.Logf("copy Shared_Dirty %d kB before reading its heap, %d kB after", before, after)
	if before < 16<<10 || after < before*9/10 {
		t.Errorf("Shared_Dirty %d kB -> %d kB: reading copied the pages", before, after)
	}
}

// TestForkPause checks on a 256 MiB heap that a fork snapshot stops the
// target for less time than reading its heap directly, as the target
// itself measures it. On a loaded machine a single measurement can be
// off, so it takes the best of three.
func TestForkPause(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ps := startPauser(t, 256, false)
	var fails []string
	for try := 0; try < 3; try++ {
		d := snapshotPauser(t, ps, SnapshotDirect)
		f := snapshotPauser(t, ps, SnapshotFork)
		t.Logf("direct: pause %v (target saw %v), read %v of %d MiB", d.pause, d.gap, d.read, d.heap>>20)
		t.Logf("fork:   pause %v (target saw %v), read %v, cleanup %v", f.pause, f.gap, f.read, f.cleanup)
		fails = fails[:0]
		if f.pause <= 0 || f.pause >= d.pause {
			fails = append(fails, fmt.Sprintf("fork pause %v, direct pause %v", f.pause, d.pause))
		}
		if f.gap < f.pause/2 {
			fails = append(fails, fmt.Sprintf("the target saw a stall of %v, Pause says %v", f.gap, f.pause))
		}
		if len(fails) == 0 {
			return
		}
	}
	for _, f := range fails {
		t.Error(f)
	}
}
