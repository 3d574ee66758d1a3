package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/heapsift/heapsift/internal/procfs"
	"github.com/heapsift/heapsift/internal/units"
	"golang.org/x/sys/unix"
)

// Machine describes where the numbers were measured.
type Machine struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	RAM    uint64 `json:"ram_bytes"`
	Kernel string `json:"kernel"`
	Glibc  string `json:"glibc"`
	Go     string `json:"go"`
	Date   string `json:"date"`
	Commit string `json:"commit"`
	// Load is /proc/loadavg's 1, 5 and 15 minute averages when the
	// measurements started: other work on the machine skews them.
	Load string `json:"load_average"`
}

func machine(root string) Machine {
	m := Machine{Cores: runtime.NumCPU(), Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
	if info, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(info), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	m.RAM = procfs.Bytes("/proc/meminfo", "MemTotal")
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(load)); len(f) >= 3 {
			m.Load = strings.Join(f[:3], " ")
		}
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		m.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	output := func(dir, prog string, args ...string) string {
		cmd := exec.Command(prog, args...)
		cmd.Dir = dir
		out, _ := cmd.Output()
		return strings.TrimSpace(string(out))
	}
	m.Glibc = output("", "getconf", "GNU_LIBC_VERSION")
	m.Go = output(root, "go", "env", "GOVERSION")
	m.Commit = output(root, "git", "log", "-1", "--format=%h")
	if output(root, "git", "status", "--porcelain", "--untracked-files=no") != "" {
		m.Commit += " + uncommitted changes"
	}
	return m
}

// writeText prints the results as markdown.
func writeText(w io.Writer, r *Result) {
	m := r.Machine
	fmt.Fprintf(w, "## heapsift benchmarks\n\n")
	fmt.Fprintf(w, "- machine: %s, %d cores, %s RAM, Linux %s, %s, %s\n", m.CPU, m.Cores, sizeStr(m.RAM), m.Kernel, m.Glibc, m.Go)
	fmt.Fprintf(w, "- heapsift %s, %s, load average at start %s\n", m.Commit, m.Date, m.Load)
	fmt.Fprintf(w, "- `%s`", strings.TrimSpace(r.Command))
	if r.Runs > 1 {
		fmt.Fprintf(w, " (medians of %d runs)", r.Runs)
	}
	fmt.Fprintf(w, "\n")

	for _, s := range r.Sizes {
		fmt.Fprintf(w, "\n### %s heap: bigheap.c, %s chunks of %.1f bytes on average (skew %d), [heap] %s (RssAnon %s)\n\n",
			sizeStr(s.Requested), units.Count(uint64(s.Chunks)), s.AvgChunk, s.Skew, sizeStr(s.HeapBytes), sizeStr(s.RSSAnon))
		fmt.Fprintf(w, "Truth: %s chunks, %s bytes leaked. Read limit: process_vm_readv %.2f GB/s (the faster of one thread, %.2f GB/s, and %d threads at once), pread of /proc/PID/mem %.2f GB/s (4 MiB buffers).\n\n",
			units.Count(s.LeakedChunks), units.Count(s.LeakedBytes), s.ReadvGBps, s.ReadvOneGBps, s.ReadThreads, s.PreadGBps)
		fmt.Fprintf(w, "| analysis | wall | target paused | freeze / walk / roots + mark / report | throughput | of read limit | analyzer RSS | RSS/chunk | verdict |\n")
		fmt.Fprintf(w, "|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
		row(w, "leaks --snapshot=direct", s.Direct, durStr(s.Direct.WallMs))
		if d := s.DirectOneCPU; d != nil {
			row(w, "the same on one CPU (GOMAXPROCS=1)", *d, durStr(d.WallMs))
		}
		row(w, "leaks --snapshot=fork", s.Fork, durStr(s.Fork.WallMs))
		if c := s.Core; c != nil {
			row(w, "gcore, then leaks CORE", *c, fmt.Sprintf("%s + %s", durStr(c.GcoreMs), durStr(c.WallMs)))
		}
		if c := s.Core; c != nil && c.CoreBytes > 0 {
			fmt.Fprintf(w, "\ngcore wrote a %s core in %s, the target stopped all along; heapsift analyzed it in %s (%.2f GB/s = %.0f%% of the %.2f GB/s read limit; its RSS counts the pages of the core, which it maps).\n",
				sizeStr(uint64(c.CoreBytes)), durStr(c.GcoreMs), durStr(c.WallMs), c.GBps, c.ReadLimitPct, s.ReadvGBps)
		}
		if s.CoreNote != "" {
			fmt.Fprintf(w, "\ngcore: %s\n", s.CoreNote)
		}
		if d := s.DirectOneCPU; d != nil && s.Direct.WallMs > 0 && d.WalkMs > 0 && d.MarkMs > 0 {
			fmt.Fprintf(w, "\nOn %d CPUs against one: wall x%.2f faster, walk x%.2f, mark x%.2f.\n", s.ReadThreads,
				d.WallMs/s.Direct.WallMs, d.WalkMs/s.Direct.WalkMs, d.MarkMs/s.Direct.MarkMs)
		}
		if f := s.Floor; f != nil {
			fmt.Fprintf(w, "\nFloor (bench/floor: one pass of the least work any conservative scanner does, %d CPUs at once, 256 KiB reads, best of 5): "+
				"read %.2f GB/s; + follow the chunk headers %.2f; + test every word %.2f; + look up every possible pointer %.2f GB/s. "+
				"heapsift --snapshot=direct reaches %.0f%% of the last.\n",
				s.ReadThreads, f["read"], f["headers"], f["words"], f["lookups"], 100*s.Direct.GBps/f["lookups"])
		}
		if s.FloorNote != "" {
			fmt.Fprintf(w, "\nFloor: not measured: %s\n", s.FloorNote)
		}
	}

	fmt.Fprintf(w, "\n### Pause as the target sees it (pause.c: the largest gap between two iterations of its loop)\n\n")
	for _, s := range r.Sizes {
		p := s.Pause
		fmt.Fprintf(w, "- %s heap ([heap] %s, %s chunks; idle: %s): direct: %s (heapsift's pause_ms %s, wall %s, %s); fork: %s (pause_ms %s, wall %s, %s)\n",
			sizeStr(s.Requested), sizeStr(p.HeapBytes), units.Count(p.Chunks), durStr(p.IdleGapMs),
			durStr(p.Direct.TargetGapMs), durStr(p.Direct.PauseMs), durStr(p.Direct.WallMs), p.Direct.Verdict,
			durStr(p.Fork.TargetGapMs), durStr(p.Fork.PauseMs), durStr(p.Fork.WallMs), p.Fork.Verdict)
		switch {
		case p.ForkHuge != nil:
			h := p.ForkHuge
			fmt.Fprintf(w, "  - the same heap in transparent huge pages (`%s`, AnonHugePages %s): fork: %s (pause_ms %s, wall %s, %s)\n",
				hugeTunable, sizeStr(p.HugeBytes), durStr(h.TargetGapMs), durStr(h.PauseMs), durStr(h.WallMs), h.Verdict)
		case p.HugeNote != "":
			fmt.Fprintf(w, "  - in huge pages: %s\n", p.HugeNote)
		}
	}

	fmt.Fprintf(w, "\n### Run overhead\n\n")
	if v := r.Valgrind; v != nil {
		fmt.Fprintf(w, "spin.c %d: native %s, `heapsift run` %s (x%.2f)", v.Units, durStr(v.NativeMs), durStr(v.RunMs), v.RunMs/v.NativeMs)
		if v.ValgrindMs > 0 {
			fmt.Fprintf(w, ", `valgrind --leak-check=full` %s (x%.1f, one run)", durStr(v.ValgrindMs), v.ValgrindMs/v.NativeMs)
		}
		fmt.Fprintf(w, "\n")
	}
	if r.ValgrindNote != "" {
		fmt.Fprintf(w, "valgrind: %s\n", r.ValgrindNote)
	}
}

// row prints one analysis of the table.
func row(w io.Writer, name string, a Analysis, wall string) {
	if strings.HasPrefix(a.Verdict, "FAIL") {
		fmt.Fprintf(w, "| %s | | | | | | | | %s |\n", name, a.Verdict)
		return
	}
	fmt.Fprintf(w, "| %s | %s | %s | %s / %s / %s + %s / %s | %.2f GB/s | %.0f%% | %s | %.1f B | %s |\n",
		name, wall, durStr(a.PauseMs), durStr(a.FreezeMs), durStr(a.WalkMs), durStr(a.RootsMs), durStr(a.MarkMs), durStr(a.ReportMs),
		a.GBps, a.ReadLimitPct, sizeStr(uint64(a.RSSBytes)), a.BytesPerChunk, a.Verdict)
}

// allOK reports whether every verdict matched the truth.
func (r *Result) allOK() bool {
	for _, s := range r.Sizes {
		vs := []string{s.Direct.Verdict, s.Fork.Verdict, s.Pause.Direct.Verdict, s.Pause.Fork.Verdict}
		if s.DirectOneCPU != nil {
			vs = append(vs, s.DirectOneCPU.Verdict)
		}
		if s.Core != nil {
			vs = append(vs, s.Core.Verdict)
		}
		if s.Pause.ForkHuge != nil {
			vs = append(vs, s.Pause.ForkHuge.Verdict)
		}
		for _, v := range vs {
			if v != "OK" {
				return false
			}
		}
	}
	return true
}

// medianOf returns a T whose every float64 field is the median of that
// field over runs, and whose every string field holds the runs' distinct
// values (so a verdict that failed once shows).
func medianOf[T any](runs []T) T {
	var out T
	if len(runs) == 0 {
		return out
	}
	ov := reflect.ValueOf(&out).Elem()
	for i := 0; i < ov.NumField(); i++ {
		f := ov.Field(i)
		switch f.Kind() {
		case reflect.Float64:
			var v []float64
			for _, r := range runs {
				v = append(v, reflect.ValueOf(r).Field(i).Float())
			}
			f.SetFloat(median(v))
		case reflect.String:
			var v []string
			for _, r := range runs {
				if s := reflect.ValueOf(r).Field(i).String(); !slices.Contains(v, s) {
					v = append(v, s)
				}
			}
			f.SetString(strings.Join(v, "; "))
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// A heapSpec is a heap size, and optionally how many chunks it holds.
type heapSpec struct {
	bytes, chunks uint64
}

// parseSizes parses "256MiB,2GiB/20M": sizes in binary units (K and KiB
// alike), each optionally with a chunk count (K, M: thousands, millions).
func parseSizes(s string) ([]heapSpec, error) {
	var out []heapSpec
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		size, count, _ := strings.Cut(f, "/")
		num := strings.TrimRight(size, "KMGTIBkmgtib")
		unit := strings.TrimSuffix(strings.TrimSuffix(strings.ToUpper(size[len(num):]), "B"), "I")
		mult, ok := map[string]float64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
		n, err := strconv.ParseFloat(num, 64)
		if !ok || err != nil || n <= 0 {
			return nil, fmt.Errorf("bad heap size %q (want e.g. 256MiB, 4GiB or 2GiB/20M)", f)
		}
		h := heapSpec{bytes: uint64(n * mult)}
		if count != "" {
			cnum := strings.TrimRight(count, "KMkm")
			cmult := map[string]float64{"": 1, "K": 1e3, "M": 1e6}[strings.ToUpper(count[len(cnum):])]
			c, err := strconv.ParseFloat(cnum, 64)
			if err != nil || c < 2 || cmult == 0 {
				return nil, fmt.Errorf("bad chunk count in %q (want e.g. 2GiB/20M)", f)
			}
			h.chunks = uint64(c * cmult)
		}
		out = append(out, h)
	}
	return out, nil
}

// sizeStr formats bytes in binary units: "1.00 GiB", "230 MiB".
func sizeStr(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// durStr formats milliseconds: "0.4 ms", "73 ms", "2.31 s".
func durStr(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2f s", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f ms", ms)
}
