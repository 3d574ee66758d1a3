package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/heapsift/heapsift/bench/floor"
	"github.com/heapsift/heapsift/internal/procfs"
	"github.com/heapsift/heapsift/report"
	"golang.org/x/sys/unix"
)

// Result is everything one invocation measured.
type Result struct {
	Machine      Machine      `json:"machine"`
	Command      string       `json:"command"`
	Runs         int          `json:"runs"`
	Sizes        []SizeResult `json:"sizes"`
	Valgrind     *Valgrind    `json:"valgrind,omitempty"`
	ValgrindNote string       `json:"valgrind_note,omitempty"`
}

// SizeResult is the measurements at one heap size (medians over the runs).
type SizeResult struct {
	Requested    uint64  `json:"requested_bytes"`
	Chunks       int     `json:"bigheap_chunks"` // bigheap's argument
	Skew         int     `json:"bigheap_skew"`   // its size skew: 1 uniform, more for smaller chunks
	AvgChunk     float64 `json:"avg_chunk_bytes"`
	HeapBytes    uint64  `json:"heap_bytes"` // its [heap] mapping
	RSSAnon      uint64  `json:"rss_anon_bytes"`
	LeakedChunks uint64  `json:"leaked_chunks"` // the truth, as bigheap counted it
	LeakedBytes  uint64  `json:"leaked_bytes"`
	ReadvGBps    float64 `json:"process_vm_readv_gbps"` // the read limit: the faster of one thread and all CPUs
	ReadvOneGBps float64 `json:"process_vm_readv_one_thread_gbps"`
	ReadThreads  int     `json:"read_threads"` // how many threads read at once for ReadvGBps
	PreadGBps    float64 `json:"pread_proc_mem_gbps"`
	// Floor is the least work any conservative leak finder does, in GB/s
	// of heap at each level of package floor (read, headers, words,
	// lookups), on every CPU at once: no analysis can be faster.
	Floor     map[string]float64 `json:"floor_gbps,omitempty"`
	FloorNote string             `json:"floor_note,omitempty"`

	Direct Analysis `json:"direct"`
	// DirectOneCPU is direct mode with GOMAXPROCS=1: how the analysis
	// scales with CPUs (this machine has few).
	DirectOneCPU *Analysis `json:"direct_one_cpu,omitempty"`
	Fork         Analysis  `json:"fork"`
	Core         *Analysis `json:"gcore,omitempty"`
	CoreNote     string    `json:"gcore_note,omitempty"`

	Pause Pause `json:"pause"`
}

// Analysis is one `heapsift leaks --json` of bigheap.
type Analysis struct {
	Mode          string  `json:"mode"`
	WallMs        float64 `json:"wall_ms"`  // heapsift's whole run (for a core: the analysis only)
	PauseMs       float64 `json:"pause_ms"` // stats.pause_ms; for a core: gcore's wall time
	FreezeMs      float64 `json:"freeze_ms"`
	WalkMs        float64 `json:"walk_ms"`
	ScanMs        float64 `json:"scan_ms"`
	RootsMs       float64 `json:"roots_ms"` // of ScanMs
	MarkMs        float64 `json:"mark_ms"`  // of ScanMs
	ReportMs      float64 `json:"report_ms"`
	ScannedBytes  float64 `json:"scanned_bytes"`
	Chunks        float64 `json:"chunks"`
	GBps          float64 `json:"gbps"` // scanned bytes / wall
	ReadLimitPct  float64 `json:"read_limit_pct"`
	RSSBytes      float64 `json:"rss_bytes"` // heapsift's peak RSS
	BytesPerChunk float64 `json:"rss_bytes_per_chunk"`
	GcoreMs       float64 `json:"gcore_ms,omitempty"`
	CoreBytes     float64 `json:"core_bytes,omitempty"`
	Verdict       string  `json:"verdict"` // "OK", or what did not match
}

// Pause is pause.c's view of the analyses at one heap size.
type Pause struct {
	HeapBytes uint64      `json:"heap_bytes"`
	Chunks    uint64      `json:"chunks"`
	IdleGapMs float64     `json:"idle_gap_ms"` // the largest gap in 1 s without analysis
	Direct    PauseSample `json:"direct"`
	Fork      PauseSample `json:"fork"`
	Note      string      `json:"note,omitempty"`
	// ForkHuge is fork mode on the same heap in transparent huge pages
	// (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), unless HugeNote says why not.
	ForkHuge  *PauseSample `json:"fork_huge_pages,omitempty"`
	HugeBytes uint64       `json:"anon_huge_pages_bytes,omitempty"`
	HugeNote  string       `json:"huge_pages_note,omitempty"`
}

// hugeTunable makes glibc's malloc (2.35 and later) ask for transparent
// huge pages for its heap.
const hugeTunable = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1"

// PauseSample is one analysis of pause.c.
type PauseSample struct {
	TargetGapMs float64 `json:"target_gap_ms"` // the largest gap the target saw
	PauseMs     float64 `json:"heapsift_pause_ms"`
	WallMs      float64 `json:"wall_ms"`
	Verdict     string  `json:"verdict"`
}

// Valgrind compares spin.c's run time natively, under heapsift run and
// under valgrind.
type Valgrind struct {
	Units      int     `json:"units"`
	NativeMs   float64 `json:"native_ms"`
	RunMs      float64 `json:"heapsift_run_ms"`
	ValgrindMs float64 `json:"valgrind_ms"`
}

// avgChunk is bigheap's average chunk size with the given skew: requests
// of 16 + x^skew/496^(skew-1) bytes for x in 0..496, plus the 8-byte
// header, rounded up to 16, at least 32.
func avgChunk(skew int) float64 {
	var sum float64
	for x := uint64(0); x <= 496; x++ {
		v := x
		for range skew - 1 {
			v = v * x / 496
		}
		sum += float64(max(32, (16+v+8+15)&^15))
	}
	return sum / 497
}

// shape returns bigheap's chunk count and skew for a heap spec: the
// skew whose average chunk comes closest to bytes/chunks, or uniform
// sizes when the spec gives no count.
func shape(h heapSpec) (chunks, skew int) {
	if h.chunks == 0 {
		return max(2, int(float64(h.bytes)/avgChunk(1))), 1
	}
	want := float64(h.bytes) / float64(h.chunks)
	skew = 1
	for s := 2; s <= 6; s++ {
		if math.Abs(avgChunk(s)-want) < math.Abs(avgChunk(skew)-want) {
			skew = s
		}
	}
	return int(h.chunks), skew
}

// all measures every heap size, then the run overhead.
func (b *bench) all() (*Result, error) {
	res := &Result{Machine: b.mach, Runs: b.cfg.runs}
	for _, h := range b.cfg.heaps {
		s, err := b.size(h)
		if err != nil {
			return nil, err
		}
		res.Sizes = append(res.Sizes, s)
	}
	if b.cfg.valgrind {
		var err error
		if res.Valgrind, res.ValgrindNote, err = b.valgrind(); err != nil {
			return nil, err
		}
	} else {
		res.ValgrindNote = "skipped (-valgrind=false)"
	}
	return res, nil
}

// size measures one heap size.
func (b *bench) size(h heapSpec) (SizeResult, error) {
	req := h.bytes
	s := SizeResult{Requested: req}
	s.Chunks, s.Skew = shape(h)
	s.AvgChunk = avgChunk(s.Skew)
	b.logf("%s: starting bigheap with %d chunks (skew %d)", sizeStr(req), s.Chunks, s.Skew)
	t, err := b.startBigheap(s.Chunks, s.Skew)
	if err != nil {
		return s, err
	}
	defer b.procs.stop(t.cmd)
	s.LeakedChunks, s.LeakedBytes = t.leakedChunks, t.leakedBytes
	lo, hi, err := floor.HeapMapping(t.pid)
	if err != nil {
		return s, err
	}
	s.HeapBytes, s.RSSAnon = hi-lo, procfs.Bytes(fmt.Sprintf("/proc/%d/status", t.pid), "RssAnon")

	var direct, direct1, fork, core []Analysis
	var readv, readv1, pread []float64
	floors := map[string][]float64{}
	fh, err := floor.Load(t.pid, lo, hi)
	if err != nil {
		s.FloorNote = err.Error()
	}
	for run := 0; run < b.cfg.runs; run++ {
		rv1, rvAll, pr, err := readCeiling(t.pid, lo, hi)
		if err != nil {
			return s, err
		}
		rv := max(rv1, rvAll)
		readv, readv1, pread = append(readv, rv), append(readv1, rv1), append(pread, pr)
		if fh != nil {
			b.logf("%s: run %d: the floor", sizeStr(req), run+1)
			best, err := fh.Best(5)
			if err != nil {
				return s, err
			}
			for _, l := range floor.Levels() {
				floors[l.String()] = append(floors[l.String()], best[l])
			}
		}
		b.logf("%s: run %d: read limit %.2f GB/s; heapsift leaks --snapshot=direct", sizeStr(req), run+1, rv)
		direct = append(direct, b.liveAnalysis(t, "direct", rv))
		if b.ctx.Err() != nil {
			return s, b.ctx.Err()
		}
		if runtime.NumCPU() > 1 {
			b.logf("%s: run %d: heapsift leaks --snapshot=direct on one CPU (GOMAXPROCS=1)", sizeStr(req), run+1)
			direct1 = append(direct1, b.liveAnalysis(t, "direct", rv, "GOMAXPROCS=1"))
			if b.ctx.Err() != nil {
				return s, b.ctx.Err()
			}
		}
		b.logf("%s: run %d: heapsift leaks --snapshot=fork", sizeStr(req), run+1)
		fork = append(fork, b.liveAnalysis(t, "fork", rv))
		if b.ctx.Err() != nil {
			return s, b.ctx.Err()
		}
		if !b.cfg.gcore {
			s.CoreNote = "skipped (-gcore=false)"
			continue
		}
		a, note := b.coreAnalysis(t, hi-lo, rv)
		if b.ctx.Err() != nil {
			return s, b.ctx.Err()
		}
		if note != "" {
			s.CoreNote = note
			continue
		}
		core = append(core, a)
	}
	s.ReadvGBps, s.ReadvOneGBps, s.PreadGBps = median(readv), median(readv1), median(pread)
	if len(floors) > 0 {
		s.Floor = map[string]float64{}
		for l, v := range floors {
			s.Floor[l] = median(v)
		}
	}
	s.ReadThreads = runtime.GOMAXPROCS(0)
	s.Direct, s.Fork = medianOf(direct), medianOf(fork)
	if len(direct1) > 0 {
		d := medianOf(direct1)
		s.DirectOneCPU = &d
	}
	if len(core) > 0 {
		c := medianOf(core)
		s.Core = &c
	}
	b.procs.stop(t.cmd) // free its memory before pause.c takes as much

	s.Pause, err = b.pauseAt(req)
	return s, err
}

// hsRun is one heapsift leaks --json run.
type hsRun struct {
	Summary report.Summary `json:"summary"`
	Stats   report.Stats   `json:"stats"`
	wall    time.Duration
	rss     uint64 // peak resident set of heapsift (and any child it waited for)
}

// leaks runs heapsift leaks --json with args, and env added to its
// environment. Exit status 3 (leaks found) is success.
func (b *bench) leaks(env []string, args ...string) (*hsRun, error) {
	cmd := exec.CommandContext(b.ctx, b.heapsift, append([]string{"leaks", "--json"}, args...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) } // heapsift detaches on SIGINT
	cmd.WaitDelay = 10 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 3) {
		return nil, fmt.Errorf("heapsift leaks %s: %v: %s", strings.Join(args, " "), err, lastLine(stderr.String()))
	}
	r := &hsRun{wall: wall}
	if err := json.Unmarshal(stdout.Bytes(), r); err != nil {
		return nil, fmt.Errorf("heapsift leaks %s: %v", strings.Join(args, " "), err)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rss = uint64(ru.Maxrss) << 10
	}
	return r, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// verdict compares the leaks heapsift found with what the program leaked.
func verdict(r *hsRun, chunks, bytes uint64) string {
	gotC := r.Summary.Definite.Chunks + r.Summary.Indirect.Chunks
	gotB := r.Summary.Definite.Bytes + r.Summary.Indirect.Bytes
	if gotC == chunks && gotB == bytes {
		return "OK"
	}
	return fmt.Sprintf("MISMATCH: found %d chunks/%d B, leaked %d/%d", gotC, gotB, chunks, bytes)
}

// analysis turns a heapsift run into a table row.
func analysis(mode string, r *hsRun, t *bigheapTarget, readLimit float64) Analysis {
	a := Analysis{
		Mode:         mode,
		WallMs:       ms(r.wall),
		PauseMs:      r.Stats.PauseMs,
		ScannedBytes: float64(r.Stats.ScannedBytes),
		Chunks:       float64(r.Stats.Chunks),
		RSSBytes:     float64(r.rss),
		Verdict:      verdict(r, t.leakedChunks, t.leakedBytes),
	}
	if tm := r.Stats.Timings; tm != nil {
		a.FreezeMs, a.WalkMs, a.ScanMs, a.ReportMs = tm.Freeze, tm.Walk, tm.Scan, tm.Report
		a.RootsMs, a.MarkMs = tm.Roots, tm.Mark
	}
	a.GBps = a.ScannedBytes / r.wall.Seconds() / 1e9
	if readLimit > 0 {
		a.ReadLimitPct = 100 * a.GBps / readLimit
	}
	if a.Chunks > 0 {
		a.BytesPerChunk = a.RSSBytes / a.Chunks
	}
	if mode != "gcore" && r.Stats.Snapshot != mode {
		a.Verdict = fmt.Sprintf("FAIL: asked for --snapshot=%s, got %q", mode, r.Stats.Snapshot)
	}
	return a
}

// liveAnalysis analyzes bigheap with heapsift leaks --snapshot=mode, with
// env added to heapsift's environment.
func (b *bench) liveAnalysis(t *bigheapTarget, mode string, readLimit float64, env ...string) Analysis {
	r, err := b.leaks(env, "--snapshot="+mode, strconv.Itoa(t.pid))
	if err != nil {
		return Analysis{Mode: mode, Verdict: "FAIL: " + err.Error()}
	}
	return analysis(mode, r, t, readLimit)
}

// coreAnalysis dumps bigheap with gcore, analyzes the core and deletes
// it. The note says why it was skipped.
func (b *bench) coreAnalysis(t *bigheapTarget, heap uint64, readLimit float64) (Analysis, string) {
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		return Analysis{}, "skipped: gcore (gdb) is not installed"
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(b.dir, &fs); err != nil {
		return Analysis{}, "skipped: " + err.Error()
	}
	if free := fs.Bavail * uint64(fs.Bsize); free < 2*heap {
		return Analysis{}, fmt.Sprintf("skipped: %s free in %s, less than twice the heap", sizeStr(free), b.dir)
	}
	b.logf("gcore -o core %d", t.pid)
	prefix := filepath.Join(b.dir, "core")
	file := fmt.Sprintf("%s.%d", prefix, t.pid)
	defer os.Remove(file)
	cmd := exec.CommandContext(b.ctx, gcore, "-o", prefix, strconv.Itoa(t.pid))
	cmd.Env = append(os.Environ(), "DEBUGINFOD_URLS=") // no network
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err = cmd.Run()
	gcoreWall := time.Since(t0)
	st, serr := os.Stat(file)
	if err != nil || serr != nil {
		return Analysis{Mode: "gcore", Verdict: fmt.Sprintf("FAIL: gcore: %v %v: %s", err, serr, lastLine(out.String()))}, ""
	}
	b.logf("heapsift leaks --json %s (%s)", file, sizeStr(uint64(st.Size())))
	r, err := b.leaks(nil, file)
	if err != nil {
		return Analysis{Mode: "gcore", Verdict: "FAIL: " + err.Error()}, ""
	}
	a := analysis("gcore", r, t, readLimit)
	a.PauseMs, a.GcoreMs, a.CoreBytes = ms(gcoreWall), ms(gcoreWall), float64(st.Size())
	return a, ""
}

// pauseAt runs pause.c with req bytes of heap and measures the largest
// gap it sees while heapsift analyzes it directly and from a fork.
func (b *bench) pauseAt(req uint64) (Pause, error) {
	var pr Pause
	mib := max(1, req>>20)
	b.logf("%s: starting pause.c with %d MiB", sizeStr(req), mib)
	p, err := b.startPauser(mib)
	if err != nil {
		return pr, err
	}
	defer b.stopPauser(p)
	if lo, hi, err := floor.HeapMapping(p.pid); err == nil {
		pr.HeapBytes = hi - lo
	}
	pr.Chunks = p.stat(statChunks)

	var idle []float64
	var direct, fork []PauseSample
	for run := 0; run < b.cfg.runs; run++ {
		if err := p.reset(); err != nil {
			return pr, err
		}
		time.Sleep(time.Second)
		idle = append(idle, ms(p.maxGap()))
		for _, mode := range []string{"direct", "fork"} {
			b.logf("%s: run %d: pause.c under heapsift leaks --snapshot=%s", sizeStr(req), run+1, mode)
			s, err := b.pauseSample(p, mode)
			if err != nil {
				return pr, err
			}
			if mode == "direct" {
				direct = append(direct, s)
			} else {
				fork = append(fork, s)
			}
		}
	}
	pr.IdleGapMs, pr.Direct, pr.Fork = median(idle), medianOf(direct), medianOf(fork)
	b.stopPauser(p)
	return pr, b.pauseHuge(&pr, req)
}

// pauseHuge measures fork mode again on pause.c with its heap in huge
// pages: fork copies one page table entry per 2 MiB instead of per 4 KiB.
func (b *bench) pauseHuge(pr *Pause, req uint64) error {
	mib := max(1, req>>20)
	b.logf("%s: starting pause.c with %d MiB in huge pages (%s)", sizeStr(req), mib, hugeTunable)
	p, err := b.startPauser(mib, hugeTunable)
	if err != nil {
		return err
	}
	defer b.stopPauser(p)
	pr.HugeBytes = procfs.Bytes(fmt.Sprintf("/proc/%d/smaps_rollup", p.pid), "AnonHugePages")
	if pr.HugeBytes < uint64(float64(pr.HeapBytes)*0.9) {
		pr.HugeNote = fmt.Sprintf("only %s of the heap is in huge pages (transparent huge pages off, or glibc older than 2.35): not measured", sizeStr(pr.HugeBytes))
		return nil
	}
	var fork []PauseSample
	for run := 0; run < b.cfg.runs; run++ {
		b.logf("%s: run %d: pause.c (huge pages) under heapsift leaks --snapshot=fork", sizeStr(req), run+1)
		s, err := b.pauseSample(p, "fork")
		if err != nil {
			return err
		}
		fork = append(fork, s)
	}
	s := medianOf(fork)
	pr.ForkHuge = &s
	return nil
}

// pauseSample analyzes pause.c once; it leaks nothing.
func (b *bench) pauseSample(p *pauser, mode string) (PauseSample, error) {
	if err := p.reset(); err != nil {
		return PauseSample{}, err
	}
	time.Sleep(20 * time.Millisecond)
	r, err := b.leaks(nil, "--snapshot="+mode, strconv.Itoa(p.pid))
	if b.ctx.Err() != nil {
		return PauseSample{}, b.ctx.Err()
	}
	time.Sleep(20 * time.Millisecond) // let the target see the end of the gap
	s := PauseSample{TargetGapMs: ms(p.maxGap())}
	if err != nil {
		s.Verdict = "FAIL: " + err.Error()
		return s, nil
	}
	s.PauseMs, s.WallMs, s.Verdict = r.Stats.PauseMs, ms(r.wall), verdict(r, 0, 0)
	return s, nil
}

// valgrind times spin.c natively, under heapsift run (the median of the
// runs each) and under valgrind --leak-check=full (once: it is slow).
func (b *bench) valgrind() (*Valgrind, string, error) {
	units := strconv.Itoa(b.cfg.spinUnits)
	timed := func(prog string, args ...string) (float64, error) {
		cmd := exec.CommandContext(b.ctx, prog, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		t0 := time.Now()
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s %s: %v: %s", prog, strings.Join(args, " "), err, lastLine(stderr.String()))
		}
		return ms(time.Since(t0)), nil
	}
	b.logf("spin.c %s: natively and under heapsift run, %d times each", units, b.cfg.runs)
	if _, err := timed(b.spin, units); err != nil { // warm up
		return nil, "", err
	}
	var native, run []float64
	for i := 0; i < b.cfg.runs; i++ {
		n, err := timed(b.spin, units)
		if err != nil {
			return nil, "", err
		}
		r, err := timed(b.heapsift, "run", "--", b.spin, units)
		if err != nil {
			return nil, "", err
		}
		native, run = append(native, n), append(run, r)
	}
	v := &Valgrind{Units: b.cfg.spinUnits, NativeMs: median(native), RunMs: median(run)}
	vg, err := exec.LookPath("valgrind")
	if err != nil {
		return v, "valgrind is not installed", nil
	}
	b.logf("spin.c %s under valgrind --leak-check=full", units)
	if v.ValgrindMs, err = timed(vg, "-q", "--leak-check=full", b.spin, units); err != nil {
		return nil, "", err
	}
	return v, "", nil
}

// readCeiling measures how fast pid's heap [lo, hi) can be read with
// process_vm_readv, by one thread and by one thread per CPU (each reading
// its share), and with pread of /proc/PID/mem, 4 MiB at a time: the best
// of three passes each, in GB/s.
func readCeiling(pid int, lo, hi uint64) (readv1, readvAll, pread float64, err error) {
	mem, err := os.Open(fmt.Sprintf("/proc/%d/mem", pid))
	if err != nil {
		return 0, 0, 0, err
	}
	defer mem.Close()
	// passes reads [lo, hi) with threads goroutines, each its own share.
	passes := func(threads int, read func(buf []byte, a uint64) error) (float64, error) {
		bufs := make([][]byte, threads)
		for i := range bufs {
			bufs[i] = make([]byte, 4<<20)
		}
		best := 0.0
		for range 3 {
			share := (hi - lo) / uint64(threads) &^ 4095
			errs := make([]error, threads)
			var wg sync.WaitGroup
			t0 := time.Now()
			for i := range threads {
				from, to := lo+uint64(i)*share, lo+uint64(i+1)*share
				if i == threads-1 {
					to = hi
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := bufs[i]
					for a := from; a < to && errs[i] == nil; a += uint64(len(buf)) {
						errs[i] = read(buf[:min(uint64(len(buf)), to-a)], a)
					}
				}()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				return 0, err
			}
			best = max(best, float64(hi-lo)/time.Since(t0).Seconds()/1e9)
		}
		return best, nil
	}
	readv := func(buf []byte, a uint64) error {
		local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
		remote := []unix.RemoteIovec{{Base: uintptr(a), Len: len(buf)}}
		_, err := unix.ProcessVMReadv(pid, local, remote, 0)
		return err
	}
	if readv1, err = passes(1, readv); err == nil {
		readvAll, err = passes(runtime.GOMAXPROCS(0), readv)
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("process_vm_readv of pid %d: %w (needs ptrace permission)", pid, err)
	}
	pread, err = passes(1, func(buf []byte, a uint64) error {
		_, err := mem.ReadAt(buf, int64(a))
		return err
	})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("pread of /proc/%d/mem: %w", pid, err)
	}
	return readv1, readvAll, pread, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
