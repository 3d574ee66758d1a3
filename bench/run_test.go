package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/heapsift/heapsift/internal/testprog"
)

// BenchmarkRunOverhead measures what `heapsift run` adds to the run time
// of a program that spends about 1 s of CPU (testdata/bench/spin.c:
// malloc/free churn, threads created and joined, ~50 signals). Each
// iteration runs the program directly, under `heapsift run` and under
// `heapsift run --follow-forks`, in turn, with the heapsift binary built
// from this checkout; the metrics are the mean wall times and their
// ratios: the median of the per-iteration wall-time ratios, and the ratio
// of total CPU times (ns/op is the time under `heapsift run`). With valgrind
// installed, the program also runs once under `valgrind --leak-check=full`
// for comparison (HEAPSIFT_BENCH_VALGRIND=0 skips it).
//
//	go test -run '^$' -bench RunOverhead -benchtime 20x ./bench
//	HEAPSIFT_BENCH_UNITS=120 go test -run '^$' -bench RunOverhead ./bench  # about 2 s of CPU
//
// The ratios are only as good as the machine is quiet: on a shared one,
// build the test binary (go test -c ./bench) and run it under nice -n -15.
func BenchmarkRunOverhead(b *testing.B) {
	if os.Geteuid() != 0 {
		if s, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); err == nil && !bytes.Equal(bytes.TrimSpace(s), []byte("0")) {
			b.Skip("needs ptrace permission (run as root)")
		}
	}
	root, err := testprog.ModuleRoot()
	if err != nil {
		b.Fatal(err)
	}
	builder := &testprog.Builder{SourceDir: filepath.Join(root, "testdata", "bench")}
	b.Cleanup(func() { builder.Cleanup() })
	spin := builder.Build(b, "spin")
	heapsift := buildHeapsift(b, root)
	if heapsift == "" {
		b.Skip("the go command is not in PATH")
	}
	units := "60"
	if s := os.Getenv("HEAPSIFT_BENCH_UNITS"); s != "" {
		units = s
	}

	// Warm up the page cache and the CPU's clocks.
	timeRun(b, spin, units)
	timeRun(b, heapsift, "run", "--", spin, units)

	var direct, run, follow measure
	var runRatios, followRatios []float64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Every other iteration in the reverse order, so that a trend
		// in the machine's speed favors none of them.
		var d, r, f measure
		if i%2 == 0 {
			d = timeRun(b, spin, units)
			r = timeRun(b, heapsift, "run", "--", spin, units)
			f = timeRun(b, heapsift, "run", "--follow-forks", "--", spin, units)
		} else {
			f = timeRun(b, heapsift, "run", "--follow-forks", "--", spin, units)
			r = timeRun(b, heapsift, "run", "--", spin, units)
			d = timeRun(b, spin, units)
		}
		direct.add(d)
		run.add(r)
		follow.add(f)
		runRatios = append(runRatios, r.wall.Seconds()/d.wall.Seconds())
		followRatios = append(followRatios, f.wall.Seconds()/d.wall.Seconds())
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(run.wall.Nanoseconds())/n, "ns/op")
	b.ReportMetric(direct.wall.Seconds()/n, "direct-s")
	b.ReportMetric(run.wall.Seconds()/n, "run-s")
	b.ReportMetric(follow.wall.Seconds()/n, "follow-s")
	b.ReportMetric(median(runRatios), "run/direct")
	b.ReportMetric(median(followRatios), "follow/direct")
	b.ReportMetric(run.cpu.Seconds()/direct.cpu.Seconds(), "run-cpu/direct-cpu")
	b.Logf("%d runs of %s %s, mean wall (CPU) time: direct %.3f s (%.3f s), heapsift run %.3f s (%.3f s), run --follow-forks %.3f s (%.3f s)",
		b.N, filepath.Base(spin), units, direct.wall.Seconds()/n, direct.cpu.Seconds()/n,
		run.wall.Seconds()/n, run.cpu.Seconds()/n, follow.wall.Seconds()/n, follow.cpu.Seconds()/n)
	b.Logf("median wall-time ratio to direct: run x%.3f, run --follow-forks x%.3f; CPU-time ratio: run x%.3f, --follow-forks x%.3f",
		median(runRatios), median(followRatios), run.cpu.Seconds()/direct.cpu.Seconds(), follow.cpu.Seconds()/direct.cpu.Seconds())

	if vg, err := exec.LookPath("valgrind"); err == nil && os.Getenv("HEAPSIFT_BENCH_VALGRIND") != "0" {
		// Once per test binary: the benchmark function runs with b.N = 1
		// first.
		valgrindOnce.Do(func() { valgrindTime = timeRun(b, vg, "-q", "--leak-check=full", spin, units) })
		v := valgrindTime
		ratio := v.wall.Seconds() / (direct.wall.Seconds() / n)
		b.ReportMetric(ratio, "valgrind/direct")
		b.Logf("valgrind --leak-check=full: %.2f s (x%.1f)", v.wall.Seconds(), ratio)
	}
}

var (
	heapsiftOnce sync.Once
	heapsiftPath string
	heapsiftErr  error
	valgrindOnce sync.Once
	valgrindTime measure
)

// buildHeapsift builds the heapsift command of this checkout, once per
// test binary; "" if there is no go command.
func buildHeapsift(b *testing.B, root string) string {
	b.Helper()
	heapsiftOnce.Do(func() {
		gocmd, err := exec.LookPath("go")
		if err != nil {
			return
		}
		// Named like internal/testprog's directories, which a later
		// test run removes once this process is gone.
		dir, err := os.MkdirTemp("", fmt.Sprintf("heapsift-testprog-%d-bench-", os.Getpid()))
		if err != nil {
			heapsiftErr = err
			return
		}
		heapsiftPath = filepath.Join(dir, "heapsift")
		cmd := exec.Command(gocmd, "build", "-o", heapsiftPath, "./cmd/heapsift")
		cmd.Dir = root
		if msg, err := cmd.CombinedOutput(); err != nil {
			heapsiftErr = fmt.Errorf("building heapsift: %v\n%s", err, msg)
		}
	})
	if heapsiftErr != nil {
		b.Fatal(heapsiftErr)
	}
	return heapsiftPath
}

// A measure is the wall and CPU (user + system, the process's and its
// reaped descendants') time of runs.
type measure struct{ wall, cpu time.Duration }

func (m *measure) add(o measure) { m.wall += o.wall; m.cpu += o.cpu }

func median(v []float64) float64 {
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// timeRun runs a command to its end, which must succeed, and returns how
// long it took.
func timeRun(b *testing.B, prog string, args ...string) measure {
	b.Helper()
	cmd := exec.Command(prog, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	if err != nil {
		b.Fatalf("%s %v: %v\n%s", prog, args, err, stderr.Bytes())
	}
	return measure{wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
}
