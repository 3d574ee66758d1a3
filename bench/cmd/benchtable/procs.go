package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heapsift/heapsift/internal/testprog"
)

// bench is one invocation: its configuration, the programs it built and
// the targets it runs.
type bench struct {
	ctx   context.Context
	cfg   config
	root  string // the module root
	dir   string // temporary: the binaries, pause.c's stats file, cores
	procs procSet
	log   io.Writer // progress, on stderr
	mach  Machine   // taken before anything was built

	heapsift, bigheap, pause, spin string // built programs
}

// newBench builds heapsift and the targets.
func newBench(ctx context.Context, cfg config) (*bench, error) {
	root, err := testprog.ModuleRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "benchtable-")
	if err != nil {
		return nil, err
	}
	b := &bench{ctx: ctx, cfg: cfg, root: root, dir: dir, log: os.Stderr, mach: machine(root)}
	b.heapsift = filepath.Join(dir, "heapsift")
	b.logf("building heapsift and testdata/bench in %s", dir)
	steps := []struct {
		out  string
		args []string
	}{
		{"", []string{"go", "build", "-o", b.heapsift, "./cmd/heapsift"}},
		// As internal/testprog builds fixtures, and as the ptrace tests
		// build pause.c (-O2: a tight loop times its gaps finely).
		{"bigheap", []string{"gcc", "-std=gnu11", "-O0", "-g", "-pthread", "-Wall"}},
		{"spin", []string{"gcc", "-std=gnu11", "-O0", "-g", "-pthread", "-Wall"}},
		{"pause", []string{"gcc", "-O2", "-Wall"}},
	}
	for _, s := range steps {
		args := s.args
		if s.out != "" {
			args = append(args, "-o", filepath.Join(dir, s.out), filepath.Join(root, "testdata", "bench", s.out+".c"))
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	b.bigheap, b.spin, b.pause = filepath.Join(dir, "bigheap"), filepath.Join(dir, "spin"), filepath.Join(dir, "pause")
	return b, nil
}

// close kills whatever still runs and removes the temporary directory.
func (b *bench) close() {
	b.procs.stopAll()
	os.RemoveAll(b.dir)
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.log, "benchtable: "+format+"\n", args...)
}

// procSet holds the running targets. Each runs in its own process group,
// which is killed when the target is done with, on every error path, and
// at once on Ctrl-C.
type procSet struct {
	mu   sync.Mutex
	cmds []*exec.Cmd
}

// start starts cmd in a new process group and remembers it.
func (s *procSet) start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmds = append(s.cmds, cmd)
	return nil
}

// stop kills cmd's process group and reaps cmd; it is safe to call twice.
func (s *procSet) stop(cmd *exec.Cmd) {
	s.mu.Lock()
	found := false
	for i, c := range s.cmds {
		if c == cmd {
			s.cmds = append(s.cmds[:i], s.cmds[i+1:]...)
			found = true
			break
		}
	}
	s.mu.Unlock()
	if found {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	}
}

// signalAll kills every target's process group without waiting: for a
// signal handler, while the main goroutine may be waiting on them.
func (s *procSet) signalAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
	}
}

func (s *procSet) stopAll() {
	s.mu.Lock()
	cmds := append([]*exec.Cmd(nil), s.cmds...)
	s.mu.Unlock()
	for _, c := range cmds {
		s.stop(c)
	}
}

// startReady starts a target and returns it with the first line it
// prints, which says that it is ready.
func (b *bench) startReady(prog string, args ...string) (*exec.Cmd, string, error) {
	return b.startReadyEnv(nil, prog, args...)
}

// startReadyEnv is startReady with variables added to the environment.
func (b *bench) startReadyEnv(env []string, prog string, args ...string) (*exec.Cmd, string, error) {
	cmd := exec.Command(prog, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := b.procs.start(cmd); err != nil {
		return nil, "", err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		b.procs.stop(cmd)
		if b.ctx.Err() != nil {
			return nil, "", b.ctx.Err()
		}
		return nil, "", fmt.Errorf("%s: no ready line: %v", filepath.Base(prog), err)
	}
	return cmd, strings.TrimSpace(line), nil
}

// bigheapTarget is a running bigheap and what it says it leaked.
type bigheapTarget struct {
	cmd          *exec.Cmd
	pid          int
	leakedChunks uint64
	leakedBytes  uint64
}

// startBigheap starts bigheap with n chunks of the given size skew, 64 of
// whose subtrees leak.
func (b *bench) startBigheap(n, skew int) (*bigheapTarget, error) {
	cmd, line, err := b.startReady(b.bigheap, strconv.Itoa(n), "64", strconv.Itoa(skew))
	if err != nil {
		return nil, err
	}
	t := &bigheapTarget{cmd: cmd}
	if _, err := fmt.Sscanf(line, "ready %d %d %d", &t.pid, &t.leakedChunks, &t.leakedBytes); err != nil {
		b.procs.stop(cmd)
		return nil, fmt.Errorf("bigheap said %q: %v", line, err)
	}
	time.Sleep(100 * time.Millisecond) // let it park in pause()
	return t, nil
}

// pauser is a running pause.c: it spins and records the largest gap
// between two of its iterations in a file it maps shared.
type pauser struct {
	cmd   *exec.Cmd
	pid   int
	stats *os.File
}

// The words of pause.c's struct stats.
const (
	statReset = iota
	statSeen
	statMaxGap
	statIters
	statGaps1ms
	statHeapBytes
	statChunks
)

func (b *bench) startPauser(mib uint64, env ...string) (*pauser, error) {
	file := filepath.Join(b.dir, "pause-stats")
	cmd, line, err := b.startReadyEnv(env, b.pause, file, strconv.FormatUint(mib, 10))
	if err != nil {
		return nil, err
	}
	p := &pauser{cmd: cmd}
	if _, err := fmt.Sscanf(line, "ready %d", &p.pid); err != nil {
		b.procs.stop(cmd)
		return nil, fmt.Errorf("pause said %q: %v", line, err)
	}
	if p.stats, err = os.OpenFile(file, os.O_RDWR, 0); err != nil {
		b.procs.stop(cmd)
		return nil, err
	}
	return p, nil
}

func (b *bench) stopPauser(p *pauser) {
	b.procs.stop(p.cmd)
	p.stats.Close()
}

// stat reads one word of the stats file (the page cache page that the
// target maps).
func (p *pauser) stat(i int) uint64 {
	var w [8]byte
	if _, err := p.stats.ReadAt(w[:], int64(8*i)); err != nil {
		return 0
	}
	return binary.LittleEndian.Uint64(w[:])
}

// reset starts a new measurement of the largest gap.
func (p *pauser) reset() error {
	r := p.stat(statReset) + 1
	var w [8]byte
	binary.LittleEndian.PutUint64(w[:], r)
	if _, err := p.stats.WriteAt(w[:], 8*statReset); err != nil {
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); p.stat(statSeen) != r; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return errors.New("pause: reset not acknowledged")
		}
	}
	return nil
}

// maxGap is the largest gap the target saw since the last reset.
func (p *pauser) maxGap() time.Duration {
	return time.Duration(p.stat(statMaxGap))
}
