// Command benchtable measures heapsift on synthetic heaps and prints one
// table per heap size, so that every performance claim can be reproduced
// with one command:
//
//	go run ./bench/cmd/benchtable                      # heaps of 1 GiB, 2 GiB in 20 million chunks, 4 GiB
//	go run ./bench/cmd/benchtable -heap 256MiB,1GiB -runs 3
//
// It builds heapsift from this checkout and the programs of testdata/bench
// with the system gcc, then for each heap size starts bigheap.c with that
// much heap and measures `heapsift leaks --json` with --snapshot=direct,
// with --snapshot=fork, and on a gdb core (gcore), checks each verdict
// against what bigheap says it leaked, and measures how fast the heap can
// be read at all (process_vm_readv, /proc/PID/mem). pause.c then measures
// from the inside how long a target of the same size stands still. Once
// per invocation, spin.c runs natively, under `heapsift run` and under
// valgrind. See bench/README.md.
//
// It needs ptrace permission over its targets (root, CAP_SYS_PTRACE or
// kernel.yama.ptrace_scope=0).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/heapsift/heapsift/internal/procfs"
)

// config is what the command line asks for.
type config struct {
	heaps     []heapSpec // requested heap sizes, and chunk counts
	runs      int        // repetitions of every measurement; the median is printed
	jsonFile  string     // also write the results as JSON here
	gcore     bool       // measure gcore + core analysis
	valgrind  bool       // the run-overhead comparison with valgrind
	spinUnits int        // spin.c's work, in its units (60: about 1 s of CPU)
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	var cfg config
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	heaps := fs.String("heap", "1GiB,2GiB/20M,4GiB", "comma-separated heap sizes (B, KiB, MiB, GiB; K, M, G are the same),\neach optionally with a chunk count (2GiB/20M: 20 million chunks, sizes skewed to match)")
	fs.IntVar(&cfg.runs, "runs", 1, "repeat every measurement `N` times and print the medians")
	fs.StringVar(&cfg.jsonFile, "json", "", "also write the results as JSON to `FILE`")
	fs.BoolVar(&cfg.gcore, "gcore", true, "measure gdb's gcore and the analysis of its core")
	fs.BoolVar(&cfg.valgrind, "valgrind", true, "compare `heapsift run` with valgrind on spin.c")
	fs.IntVar(&cfg.spinUnits, "spin-units", 60, "spin.c's amount of work (60: about 1 s of CPU)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./bench/cmd/benchtable [flags]\n\nMeasures heapsift on synthetic heaps and prints a markdown table (needs root or ptrace permission).\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if cfg.heaps, err = parseSizes(*heaps); err != nil || cfg.runs < 1 || fs.NArg() > 0 {
		if err == nil {
			err = errors.New("-runs must be at least 1, and there are no arguments")
		}
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		return 2
	}
	if err := checkPtrace(); err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	b, err := newBench(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		return 1
	}
	defer b.close()
	// On Ctrl-C, kill the targets at once: that also ends whatever waits
	// for them.
	go func() {
		<-ctx.Done()
		b.procs.signalAll()
	}()

	res, err := b.all()
	if ctx.Err() != nil {
		fmt.Fprintln(os.Stderr, "benchtable: interrupted; targets killed")
		return 130
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
		return 1
	}
	res.Command = "go run ./bench/cmd/benchtable " + strings.Join(args, " ")
	writeText(os.Stdout, res)
	if cfg.jsonFile != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err == nil {
			err = os.WriteFile(cfg.jsonFile, append(data, '\n'), 0o644)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "benchtable: %v\n", err)
			return 1
		}
	}
	if !res.allOK() {
		fmt.Fprintln(os.Stderr, "benchtable: some verdicts did not match the truth (see the table)")
		return 1
	}
	return 0
}

// checkPtrace says why heapsift will not be allowed to attach to the
// benchmark's targets, which are its siblings.
func checkPtrace() error {
	if os.Geteuid() == 0 {
		return nil
	}
	if v, ok := procfs.Field("/proc/self/status", "CapEff"); ok {
		if caps, err := strconv.ParseUint(v, 16, 64); err == nil && caps&(1<<19) != 0 {
			return nil // CAP_SYS_PTRACE
		}
	}
	scope, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if errors.Is(err, os.ErrNotExist) || (err == nil && strings.TrimSpace(string(scope)) == "0") {
		return nil
	}
	return errors.New("heapsift must attach to the benchmark's target processes with ptrace, which is not permitted here: " +
		"run as root (sudo env PATH=$PATH go run ./bench/cmd/benchtable), with CAP_SYS_PTRACE, or with kernel.yama.ptrace_scope=0")
}
