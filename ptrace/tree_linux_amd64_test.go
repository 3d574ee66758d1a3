package ptrace

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/addrspace"
)

// startTree starts testdata/tree with args under StartTree; the Runner is
// closed when the test ends, and no process of the tree may be left
// traced or stopped.
func startTree(t *testing.T, stdout *os.File, args ...string) *Runner {
	t.Helper()
	return startProgram(t, StartTree, "tree", stdout, args...)
}

// exited is what a test learns from one frozen process.
type exited struct {
	pid    int
	args   []string
	status ExitStatus
	marker string // the role its marker names
	shares int    // SharesMemoryWith
	ppid   int    // its parent while frozen
}

func (e exited) String() string {
	return fmt.Sprintf("pid %d %q %v marker %q shares %d", e.pid, e.args, e.status, e.marker, e.shares)
}

// next calls Next with a deadline.
func next(t *testing.T, r *Runner) (*Process, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := r.Next(ctx)
	if err != nil && err != io.EOF {
		t.Fatalf("Next: %v", err)
	}
	return p, err
}

// inspect reads what a test checks of a frozen process.
func inspect(t *testing.T, p *Process) exited {
	t.Helper()
	info := p.Info()
	st, ok := p.Exiting()
	if !ok {
		t.Errorf("pid %d: Exiting() not ok", info.PID)
	}
	e := exited{pid: info.PID, args: info.Args, status: st, shares: p.SharesMemoryWith()}
	if s, err := readStatus(procDir(info.PID) + "/status"); err == nil {
		e.ppid, _ = strconv.Atoi(s["PPid"])
	}
	for _, m := range p.Mappings() {
		if m.Perm&addrspace.Write == 0 || m.Perm&addrspace.Read == 0 || m.Size() > 64<<20 {
			continue
		}
		b, err := addrspace.ReadFull(p, m.Start, int(m.Size()))
		if err != nil {
			continue
		}
		if i := bytes.Index(b, []byte("tree-marker-")); i >= 0 {
			rest := b[i+len("tree-marker-"):]
			if j := bytes.IndexByte(rest, 0); j >= 0 {
				e.marker = string(rest[:j])
			}
			break
		}
	}
	if e.marker == "" {
		t.Errorf("pid %d %q: no marker in its memory at exit", e.pid, e.args)
	}
	return e
}

// collect returns every process of the tree as it exits, releasing each,
// until Next reports the end; then it checks the program's status.
func collect(t *testing.T, r *Runner, wantCode int) []exited {
	t.Helper()
	var out []exited
	for {
		p, err := next(t, r)
		if err == io.EOF {
			break
		}
		out = append(out, inspect(t, p))
		if err := p.Detach(); err != nil {
			t.Errorf("Detach: %v", err)
		}
	}
	if st := finish(t, r); st.Code != wantCode || st.Signal != 0 {
		t.Errorf("Finish() = %v, want exit code %d", st, wantCode)
	}
	if p, err := r.Next(context.Background()); err != io.EOF || p != nil {
		t.Errorf("Next after the end: %v, %v", p, err)
	}
	return out
}

// byMarker indexes processes by their marker, failing on duplicates.
func byMarker(t *testing.T, ps []exited) map[string]exited {
	t.Helper()
	m := map[string]exited{}
	for _, e := range ps {
		if _, dup := m[e.marker]; dup {
			t.Errorf("two processes with marker %q", e.marker)
		}
		m[e.marker] = e
	}
	return m
}

func wantProc(t *testing.T, m map[string]exited, marker string, code int) exited {
	t.Helper()
	e, ok := m[marker]
	if !ok {
		t.Errorf("no process with marker %q; got %v", marker, m)
		return e
	}
	if e.status.Code != code || e.status.Signal != 0 {
		t.Errorf("%s: %v, want exit code %d", marker, e.status, code)
	}
	return e
}

func TestTreeFork(t *testing.T) {
	r := startTree(t, nil, "fork", "3")
	ps := collect(t, r, 0)
	if len(ps) != 4 {
		t.Fatalf("%d processes, want 4: %v", len(ps), ps)
	}
	m := byMarker(t, ps)
	root := wantProc(t, m, "parent", 0)
	if root.pid != r.Pid() || len(root.args) != 3 || root.args[1] != "fork" {
		t.Errorf("root %v, want pid %d with its argv", root, r.Pid())
	}
	for i := 0; i < 3; i++ {
		c := wantProc(t, m, fmt.Sprintf("child-%d", i), 10+i)
		if c.pid == r.Pid() || c.ppid != r.Pid() {
			t.Errorf("child %v: parent %d, want %d", c, c.ppid, r.Pid())
		}
	}
	// The parent is reaped last, after it waited for its children.
	if ps[len(ps)-1].pid != r.Pid() {
		t.Errorf("the parent was not the last to exit: %v", ps)
	}
}

// TestTreeParallel: while one child is held frozen, the others run on:
// two children that exit only once both have started are both frozen
// before either is released.
func TestTreeParallel(t *testing.T) {
	r := startTree(t, nil, "parallel")
	p1, _ := next(t, r)
	p2, _ := next(t, r)
	if p1 == nil || p2 == nil {
		t.Fatal("not two processes")
	}
	got := []string{inspect(t, p1).marker, inspect(t, p2).marker}
	sort.Strings(got)
	if got[0] != "par-0" || got[1] != "par-1" {
		t.Errorf("frozen at once: %v, want par-0 and par-1", got)
	}
	// Both are still held, readable.
	if _, err := p1.ReadAt(make([]byte, 8), p1.Mappings()[0].Start); err != nil {
		t.Errorf("first process no longer readable: %v", err)
	}
	p1.Detach()
	p2.Detach()
	ps := collect(t, r, 0)
	if len(ps) != 1 || ps[0].pid != r.Pid() {
		t.Errorf("after the children: %v, want the parent only", ps)
	}
}

// TestTreeVfork: a vfork child that execs is traced into its new image; one
// that exits without exec shares its parent's memory and says so; the
// vfork parent is never deadlocked.
func TestTreeVfork(t *testing.T) {
	prog := binary(t, "tree")
	for i := 0; i < 5; i++ {
		r := startTree(t, nil, "vfork", prog)
		ps := collect(t, r, 0)
		if len(ps) != 3 {
			t.Fatalf("%d processes, want 3: %v", len(ps), ps)
		}
		for _, e := range ps {
			switch {
			case e.pid == r.Pid():
				if e.marker != "parent" || e.shares != 0 || e.status.Code != 0 {
					t.Errorf("vfork parent: %v", e)
				}
			case e.status.Code == 31:
				if e.marker != "vforked" || e.shares != 0 || !slices.Equal(e.args, []string{prog, "exit", "31", "vforked"}) {
					t.Errorf("exec'd vfork child: %v", e)
				}
			case e.status.Code == 32:
				// Its memory is its parent's, which is blocked
				// in vfork meanwhile.
				if e.marker != "parent" || e.shares != r.Pid() {
					t.Errorf("vfork child without exec: %v, want it to share %d's memory", e, r.Pid())
				}
			default:
				t.Errorf("unexpected %v", e)
			}
		}
	}
}

// TestTreeOrphan: a grandchild whose parent exited (reparented to init or a
// subreaper) stays traced and is frozen at its exit, after the program
// itself has exited.
func TestTreeOrphan(t *testing.T) {
	r := startTree(t, nil, "orphan")
	ps := collect(t, r, 0)
	m := byMarker(t, ps)
	if len(m) != 3 {
		t.Fatalf("%d processes, want 3: %v", len(m), ps)
	}
	middle := wantProc(t, m, "middle", 41)
	gc := wantProc(t, m, "grandchild", 42)
	wantProc(t, m, "parent", 0)
	if gc.ppid == middle.pid || gc.ppid == 0 {
		t.Errorf("grandchild's parent is %d, want it reparented away from %d", gc.ppid, middle.pid)
	}
	if ps[len(ps)-1].marker != "grandchild" {
		t.Errorf("the grandchild should exit last (after the program): %v", ps)
	}
}

// TestTreeClone: clone(2) children without CLONE_THREAD are processes of
// the tree, whatever their exit signal.
func TestTreeClone(t *testing.T) {
	r := startTree(t, nil, "clone")
	m := byMarker(t, collect(t, r, 0))
	wantProc(t, m, "clone-sigchld", 51)
	wantProc(t, m, "clone-nosig", 52)
	wantProc(t, m, "parent", 0)
	if len(m) != 3 {
		t.Errorf("%d processes, want 3: %v", len(m), m)
	}
}

// TestTreeExecChain: a process that execs several times is frozen once, in
// its final image.
func TestTreeExecChain(t *testing.T) {
	prog := binary(t, "tree")
	r := startTree(t, nil, "chain", prog, "3")
	ps := collect(t, r, 60)
	if len(ps) != 1 {
		t.Fatalf("%d processes, want 1: %v", len(ps), ps)
	}
	if e := ps[0]; e.marker != "chain-end" || e.pid != r.Pid() || !slices.Equal(e.args, []string{prog, "chain", prog, "0"}) || e.status.Code != 60 {
		t.Errorf("got %v, want the last image", e)
	}
}

// TestTreeThreads: a multi-threaded child is frozen with all its threads.
func TestTreeThreads(t *testing.T) {
	r := startTree(t, nil, "threads")
	var threads int
	for {
		p, err := next(t, r)
		if err == io.EOF {
			break
		}
		if e := inspect(t, p); e.marker == "threaded" {
			threads = len(p.Threads())
			if e.status.Code != 71 || p.Threads()[0].TID != e.pid {
				t.Errorf("threaded child: %v, first thread %d", e, p.Threads()[0].TID)
			}
		}
		p.Detach()
	}
	if threads != 4 {
		t.Errorf("threaded child frozen with %d threads, want 4", threads)
	}
	finish(t, r)
}

// TestTreeThreadChurn: threads that live and die before their creator's
// clone event is handled (wait4 reports the newest tracees first) are not
// taken for new processes: the tree ends, Next reports the end.
func TestTreeThreadChurn(t *testing.T) {
	for i := 0; i < 3; i++ {
		r := startTree(t, nil, "churn", "300")
		if ps := collect(t, r, 0); len(ps) != 1 || ps[0].pid != r.Pid() {
			t.Fatalf("processes %v, want the program only", ps)
		}
	}
}

// TestTreeNewTaskGone: a creation event handled after the new task's whole
// life (its first stop, exit and death came first, the creator was slow to
// stop) registers nothing: a process that never exits would keep Next
// waiting forever. (Seen with threads of a busy program on 2 CPUs.)
func TestTreeNewTaskGone(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skip(err)
	}
	gone := cmd.Process.Pid // reaped: no such task any more
	r := &Runner{tree: true, procs: map[int]*runProc{}, tasks: map[int]*runProc{}, srv: &server{tid: os.Getpid()}}
	parent := r.addProc(os.Getpid())
	for _, ev := range []int{syscall.PTRACE_EVENT_CLONE, syscall.PTRACE_EVENT_FORK, syscall.PTRACE_EVENT_VFORK} {
		r.newTask(parent, gone, ev)
	}
	if len(r.procs) != 1 || len(r.tasks) != 1 || len(parent.threads) != 1 {
		t.Errorf("a task that is gone was registered: procs %v, tasks %v", r.procs, r.tasks)
	}
	// A process that exists but that this thread does not trace is not
	// registered either (its pid was reused).
	r.newTask(parent, os.Getppid(), syscall.PTRACE_EVENT_FORK)
	if len(r.procs) != 1 {
		t.Errorf("an untraced process was registered: %v", r.procs)
	}
}

// sleeperPid reads the "sleeper PID" line of tree sleepchild.
func sleeperPid(t *testing.T, rd io.Reader) int {
	t.Helper()
	line, err := bufio.NewReader(rd).ReadString('\n')
	var pid int
	if _, serr := fmt.Sscanf(line, "sleeper %d", &pid); err != nil || serr != nil {
		t.Fatalf("output %q: %v %v", line, err, serr)
	}
	return pid
}

// gone reports whether pid no longer runs (reaped, or a zombie).
func gone(pid int) bool {
	st := processState(pid)
	return st == 0 || st == 'Z' || st == 'X'
}

// TestTreeClose: Close kills what is left of the tree, a child held frozen
// or one still running; Next then fails with ErrClosed.
func TestTreeClose(t *testing.T) {
	rd, wr, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := startTree(t, wr, "sleepchild")
	wr.Close()
	sleeper := sleeperPid(t, rd)
	p, _ := next(t, r)
	if p == nil || p.Info().PID != r.Pid() {
		t.Fatalf("first frozen process %v, want the program", p)
	}
	// Hold the program frozen, and the sleeper runs: Close ends both.
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
	if _, err := p.ReadAt(make([]byte, 8), p.Mappings()[0].Start); !errors.Is(err, ErrDetached) {
		t.Errorf("read after Close: %v", err)
	}
	waitFor(t, "the sleeper to die", func() bool { return gone(sleeper) })
}

// TestTreeExitKill: if heapsift dies (SIGKILL), every process of the tree
// dies with it, even one reparented away from the program
// (PTRACE_O_EXITKILL is inherited).
func TestTreeExitKill(t *testing.T) {
	if os.Getenv("HEAPSIFT_TREE_HELPER") != "" {
		t.Skip("helper")
	}
	binary(t, "tree")
	cmd := exec.Command(os.Args[0], "-test.run=^TestTreeHelper$")
	cmd.Env = append(os.Environ(), "HEAPSIFT_TREE_HELPER="+binDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(out)
	var sleeper, root int
	for sc.Scan() {
		fmt.Sscanf(sc.Text(), "sleeper %d", &sleeper)
		fmt.Sscanf(sc.Text(), "released %d", &root)
		if sleeper != 0 && root != 0 {
			break
		}
	}
	if sleeper == 0 || root == 0 {
		t.Fatalf("helper said nothing useful (%v)", sc.Err())
	}
	if st, err := readStatus(procDir(sleeper) + "/status"); err != nil || st["TracerPid"] == "0" || st["PPid"] == strconv.Itoa(root) {
		t.Errorf("sleeper before the kill: %v %v, want traced and reparented", st, err)
	}
	cmd.Process.Kill()
	waitFor(t, "the orphaned sleeper to die with its tracer", func() bool { return gone(sleeper) })
}

// TestTreeHelper is the heapsift stand-in that TestTreeExitKill kills.
func TestTreeHelper(t *testing.T) {
	dir := os.Getenv("HEAPSIFT_TREE_HELPER")
	if dir == "" {
		t.Skip("only run by TestTreeExitKill")
	}
	r, err := StartTree([]string{dir + "/tree", "sleepchild"}, nil, [3]*os.File{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p.Detach()
	// Wait until the program is reaped: the sleeper is an orphan now.
	for i := 0; i < 500 && alive(r.Pid()); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Printf("released %d\n", r.Pid())
	time.Sleep(time.Minute)
}

// TestTreeWrongCalls: Next needs StartTree, WaitExit needs Start.
func TestTreeWrongCalls(t *testing.T) {
	r := start(t, nil, "exit", "0")
	if _, err := r.Next(context.Background()); err == nil || !strings.Contains(err.Error(), "StartTree") {
		t.Errorf("Next on Start: %v", err)
	}
	finish(t, r)
	rt := startTree(t, nil, "exit", "0", "x")
	if _, err := rt.WaitExit(context.Background()); err == nil || !strings.Contains(err.Error(), "Next") {
		t.Errorf("WaitExit on StartTree: %v", err)
	}
	collect(t, rt, 0)
}

// TestRunIdleThreadsExit: exit(3) while the other threads sleep in
// pause(): every thread is frozen, whichever exit stop wait4 reports
// first (the thread that called exit_group shows no sign of dying in
// /proc while it sits in its exit stop).
func TestRunIdleThreadsExit(t *testing.T) {
	for i := 0; i < 20; i++ {
		r := start(t, nil, "idleexit", "3")
		p := waitExit(t, r)
		if n := len(p.Threads()); n != 4 {
			t.Fatalf("run %d: %d threads frozen, want 4", i, n)
		}
		if st := finish(t, r); st.Code != 3 {
			t.Errorf("Finish() = %v", st)
		}
	}
}
