package floor

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/internal/testprog"
)

// TestFloorCountsTheTree runs every level on bigheap's tree, whose words
// are known: each node holds two child pointers (null in leaves, and where
// a subtree was detached) and filler bytes, so the lookups must find one
// pointer to a chunk start per node but the root, less the detached ones.
func TestFloorCountsTheTree(t *testing.T) {
	const nodes, detach = 20000, 16
	cmd, line := testprog.StartBench(t, "bigheap", fmt.Sprint(nodes), fmt.Sprint(detach), "1")
	pid := cmd.Process.Pid
	lo, hi, err := HeapMapping(pid)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Load(pid, lo, hi)
	if errors.Is(err, unix.EPERM) {
		t.Skipf("no permission to read process %d: %v", pid, err)
	}
	if err != nil {
		t.Fatalf("Load (bigheap said %q): %v", line, err)
	}
	// bigheap's own chunks: its nodes, and stdio's buffer.
	if h.Chunks() < nodes || h.Chunks() > nodes+8 {
		t.Errorf("Chunks() = %d, want %d nodes and a few more", h.Chunks(), nodes)
	}
	found := map[Level]uint64{}
	for _, l := range Levels() {
		n, took, err := h.Run(l)
		if err != nil || took <= 0 {
			t.Fatalf("Run(%v) = %d, %v, %v", l, n, took, err)
		}
		found[l] = n
	}
	if found[Headers] != 0 {
		t.Errorf("headers found %d, want 0 (that level only walks)", found[Headers])
	}
	if n := found[Lookups]; n > nodes-1 || n < nodes-1-detach {
		t.Errorf("lookups found %d pointers to chunk starts, want %d less up to %d detached", n, nodes-1, detach)
	}
	if found[Words] < found[Lookups] {
		t.Errorf("words found %d, fewer than the lookups' %d", found[Words], found[Lookups])
	}
	best, err := h.Best(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range Levels() {
		if best[l] <= 0 {
			t.Errorf("Best: %v at %v GB/s", l, best[l])
		}
	}
}

// TestFloorRefusesOtherMemory checks that memory that is not a glibc heap
// gives an error, not a hang or a crash.
func TestFloorRefusesOtherMemory(t *testing.T) {
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = 0xff
	}
	lo := uint64(uintptr(unsafe.Pointer(&buf[0])))
	if _, err := Load(os.Getpid(), lo, lo+uint64(len(buf))); err == nil || !strings.Contains(err.Error(), "not a glibc heap") {
		t.Errorf("Load of 0xff bytes: %v, want an error saying it is not a glibc heap", err)
	}
	runtime.KeepAlive(buf)
}
