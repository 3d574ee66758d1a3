// Package bench measures heapsift on synthetic heaps of millions of chunks
// (testdata/bench/bigheap.c): a tree with detached, leaked subtrees whose
// exact size the program reports, so every run also checks the verdicts.
//
//	go test -bench . -benchtime 3x ./bench
//	HEAPSIFT_BENCH_CHUNKS=20000000 go test -bench Live -benchtime 1x ./bench
package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/ptrace"
	"github.com/heapsift/heapsift/report"
	"github.com/heapsift/heapsift/scan"
)

// bigheap is a running generator and what it says it leaked.
type bigheap struct {
	pid         int
	leaked      uint64
	leakedBytes uint64
	chunks      int
	cmd         *exec.Cmd
}

func startBigheap(b *testing.B, chunks int) *bigheap {
	b.Helper()
	skew := "1"
	if s := os.Getenv("HEAPSIFT_BENCH_SKEW"); s != "" {
		skew = s // bigheap's size skew: 6 makes chunks of 102 bytes on average
	}
	cmd, line := testprog.StartBench(b, "bigheap", strconv.Itoa(chunks), "64", skew)
	var h bigheap
	if _, err := fmt.Sscanf(line, "ready %d %d %d", &h.pid, &h.leaked, &h.leakedBytes); err != nil {
		b.Fatalf("bigheap said %q: %v", line, err)
	}
	h.chunks, h.cmd = chunks, cmd
	time.Sleep(100 * time.Millisecond) // let it park
	return &h
}

// attachBigheap starts a generator and attaches to it until the benchmark
// ends.
func attachBigheap(b *testing.B, chunks int) (*bigheap, *ptrace.Process) {
	b.Helper()
	h := startBigheap(b, chunks)
	p, err := ptrace.Attach(h.pid)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Detach() })
	return h, p
}

// eachChunkCount runs fn as a sub-benchmark for every generator size (see
// chunkCounts), or skips b without ptrace permission.
func eachChunkCount(b *testing.B, fn func(b *testing.B, chunks int)) {
	if os.Geteuid() != 0 {
		b.Skip("needs ptrace permission (run as root)")
	}
	for _, n := range chunkCounts() {
		b.Run(fmt.Sprintf("chunks=%d", n), func(b *testing.B) { fn(b, n) })
	}
}

func chunkCounts() []int {
	if s := os.Getenv("HEAPSIFT_BENCH_CHUNKS"); s != "" {
		var out []int
		for _, f := range strings.Split(s, ",") {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		return out
	}
	return []int{1000000, 4000000}
}

// BenchmarkLeaksLive measures `heapsift leaks PID` end to end: freeze,
// heap walk, scan and report, then detach. Bytes per op are the bytes
// scanned for pointers, so MB/s is the scan throughput.
func BenchmarkLeaksLive(b *testing.B) {
	eachChunkCount(b, func(b *testing.B, n int) {
		h := startBigheap(b, n)
		b.ResetTimer()
		var walk, mark, rep, freeze time.Duration
		var scanned, readBytes uint64
		for i := 0; i < b.N; i++ {
			t0 := time.Now()
			p, err := ptrace.Attach(h.pid)
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			hp, err := heapwalk.Walk(p, heapwalk.Options{})
			if err != nil {
				p.Detach()
				b.Fatal(err)
			}
			t2 := time.Now()
			res := scan.Run(p, hp, scan.Options{})
			t3 := time.Now()
			r := report.Build(p, hp, res, report.Options{})
			t4 := time.Now()
			p.Detach()
			freeze += t1.Sub(t0)
			walk += t2.Sub(t1)
			mark += t3.Sub(t2)
			rep += t4.Sub(t3)
			scanned = res.ScannedBytes
			readBytes = res.ReadBytes
			if got := r.Summary.Definite.Chunks + r.Summary.Indirect.Chunks; got != h.leaked {
				b.Fatalf("found %d leaked chunks, the program leaked %d", got, h.leaked)
			}
			if got := r.Summary.Definite.Bytes + r.Summary.Indirect.Bytes; got != h.leakedBytes {
				b.Fatalf("found %d leaked bytes, the program leaked %d", got, h.leakedBytes)
			}
		}
		b.SetBytes(int64(scanned))
		per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
		b.ReportMetric(per(freeze), "freeze-ms/op")
		b.ReportMetric(per(walk), "walk-ms/op")
		b.ReportMetric(per(mark), "scan-ms/op")
		b.ReportMetric(per(rep), "report-ms/op")
		b.ReportMetric(float64(n), "chunks")
		b.ReportMetric(float64(readBytes)/float64(scanned), "heap-reads/scanned")
	})
}

// BenchmarkPhases attaches to one generator once and repeats each phase on
// the frozen process: the heap walk, then the scan, so that each phase's
// cost is measured apart from the others and from attach noise. Bytes per
// op are the heap bytes walked, or the bytes scanned.
func BenchmarkPhases(b *testing.B) {
	eachChunkCount(b, func(b *testing.B, n int) {
		_, p := attachBigheap(b, n)
		hp, err := heapwalk.Walk(p, heapwalk.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var heapBytes int64
		for _, ar := range hp.Arenas {
			for _, s := range ar.Heaps {
				heapBytes += int64(s.End - s.Start)
			}
		}
		b.Run("walk", func(b *testing.B) {
			b.SetBytes(heapBytes)
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := heapwalk.Walk(p, heapwalk.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(hp.Chunks.Len()), "ns/chunk")
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N)/float64(hp.Chunks.Len()), "cpu-ns/chunk")
		})
		b.Run("scan", func(b *testing.B) {
			var res *scan.Result
			cpu := cpuTime()
			for i := 0; i < b.N; i++ {
				res = scan.Run(p, hp, scan.Options{})
			}
			b.SetBytes(int64(res.ScannedBytes))
			b.ReportMetric(float64(res.ReadBytes)/float64(res.ScannedBytes), "heap-reads/scanned")
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N)/float64(hp.Chunks.Len()), "cpu-ns/chunk")
		})
	})
}

// cpuTime returns the CPU time this process has used, user and system:
// on a shared machine, less noisy than wall time, and with it, it tells
// how well the work spreads over the CPUs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkChain measures the scan of a linked list of 1 million nodes,
// which marking must follow one link at a time, in three orders: forward
// and backward (nodes linked in allocation order, or against it: they lie
// next to each other) and random (every link jumps across the heap).
// ns/chunk is the whole scan per node.
func BenchmarkChain(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs ptrace permission (run as root)")
	}
	const nodes = 1000000
	for _, order := range []string{"forward", "backward", "random"} {
		b.Run(order, func(b *testing.B) {
			_, line := testprog.StartBench(b, "chain", strconv.Itoa(nodes), order)
			var pid int
			if _, err := fmt.Sscanf(line, "ready %d", &pid); err != nil {
				b.Fatalf("chain said %q", line)
			}
			p, err := ptrace.Attach(pid)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Detach()
			h, err := heapwalk.Walk(p, heapwalk.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			var res *scan.Result
			for i := 0; i < b.N; i++ {
				res = scan.Run(p, h, scan.Options{})
			}
			b.StopTimer()
			reachable := 0
			for _, v := range res.Verdicts {
				if v == scan.Reachable {
					reachable++
				}
			}
			if reachable < nodes {
				b.Fatalf("%d chunks reachable, the list has %d nodes", reachable, nodes)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/nodes, "ns/chunk")
		})
	}
}
