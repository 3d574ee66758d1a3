package ptrace

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/internal/testprog"
)

// TestGoneWhenKilled: a frozen process killed with SIGKILL (which reaches
// it even stopped) is gone: reads fail with ErrExited, through
// process_vm_readv and through /proc/PID/mem, and Gone says so, instead of
// memory reading as unreadable.
func TestGoneWhenKilled(t *testing.T) {
	for _, viaMem := range []bool{false, true} {
		t.Run(fmt.Sprintf("proc-mem=%v", viaMem), func(t *testing.T) {
			pid, _ := testprog.StartPaused(t, testprog.Build(t, "plain"))
			p, err := AttachWith(context.Background(), pid, AttachOptions{})
			if errors.Is(err, ErrPermission) {
				t.Skip(err)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer p.Detach()
			p.noVMReadv.Store(viaMem)
			var heap addrspace.Mapping
			for _, m := range p.Mappings() {
				if m.Path == "[heap]" {
					heap = m
				}
			}
			buf := make([]byte, 4096)
			if _, err := p.ReadAt(buf, heap.Start); err != nil || p.Gone() != nil {
				t.Fatalf("read of a live process: %v; gone: %v", err, p.Gone())
			}
			unix.Kill(pid, unix.SIGKILL)
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, err := p.ReadAt(buf, heap.Start)
				if err != nil {
					if !errors.Is(err, ErrExited) || !errors.Is(p.Gone(), ErrExited) {
						t.Errorf("read of a killed process: %v; gone: %v", err, p.Gone())
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the killed process can still be read")
				}
				time.Sleep(10 * time.Millisecond)
			}
			reqs := []Req{{Addr: heap.Start, Buf: buf}}
			if err := p.ReadBatch(reqs); !errors.Is(err, ErrExited) {
				t.Errorf("batch read of a killed process: %v", err)
			}
		})
	}
}
