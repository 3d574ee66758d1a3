package main

import (
	"strconv"
	"testing"

	"github.com/heapsift/heapsift/internal/glibctest"
	"github.com/heapsift/heapsift/internal/testprog"
)

// tunableSettings are the malloc tunables and environment settings under
// which a user's process may run, each of which moves chunks to places a
// default process never uses: one arena for all threads, no tcache, more
// fastbins, no mmapped chunks, poisoned free memory, eager trimming.
var tunableSettings = []struct {
	name string
	env  []string
}{
	{"arena_max=1", []string{"MALLOC_ARENA_MAX=1"}},
	{"tcache_count=0", []string{"GLIBC_TUNABLES=glibc.malloc.tcache_count=0"}},
	{"mxfast=160", []string{"GLIBC_TUNABLES=glibc.malloc.mxfast=160"}},
	{"mmap_threshold=32MiB", []string{"MALLOC_MMAP_THRESHOLD_=33554432"}},
	{"perturb=0xa5", []string{"MALLOC_PERTURB_=165"}},
	{"trim_threshold=0", []string{"MALLOC_TRIM_THRESHOLD_=0", "MALLOC_TOP_PAD_=0"}},
	{"all", []string{"MALLOC_ARENA_MAX=2", "MALLOC_PERTURB_=90", "MALLOC_TRIM_THRESHOLD_=0",
		"GLIBC_TUNABLES=glibc.malloc.tcache_count=0:glibc.malloc.mxfast=160:glibc.malloc.mmap_threshold=33554432"}},
}

// tunableFixtures are the fixtures whose truth holds under every setting
// (they record what each chunk is instead of assuming which list it is in).
var tunableFixtures = []string{"arenas", "plain", "graph", "interior", "deadstack", "anonroot", "cpp"}

// TestTunables requires exact verdicts, live and at exit, without debug
// symbols, from fixtures run under each of tunableSettings: with the
// system's glibc, and with the oldest and the newest glibc of
// glibctest.Releases when they can be downloaded.
func TestTunables(t *testing.T) {
	requirePtrace(t)
	targets := []string{"host"}
	if glibctest.Skipped() == "" {
		targets = append(targets, glibctest.Releases[0].Name(), glibctest.Releases[len(glibctest.Releases)-1].Name())
	}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			var tc *testprog.Toolchain
			for _, r := range glibctest.Releases {
				if r.Name() == target {
					c := glibctest.Get(t, r).Toolchain()
					tc = &c
				}
			}
			for _, name := range tunableFixtures {
				var bin string
				switch {
				case tc == nil:
					bin = testprog.Build(t, name)
				case name == "cpp":
					continue // built against the host's libstdc++ only
				default:
					bin = testprog.BuildWith(t, name, *tc)
				}
				for _, s := range tunableSettings {
					t.Run(name+"/"+s.name, func(t *testing.T) {
						t.Parallel()
						tunableLive(t, bin, s.env)
						runExitJSON(t, bin, s.env...)
					})
				}
			}
		})
	}
}

func tunableLive(t *testing.T, bin string, env []string) {
	pid, truth := testprog.StartPaused(t, bin, env...)
	_, code, stderr := leaksJSON(t, truth, glibcNoSymbols, strconv.Itoa(pid))
	checkLeakExit(t, truth, code, stderr)
}
