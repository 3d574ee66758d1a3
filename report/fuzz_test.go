package report

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/corefile"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/scan"
)

// patched is a space with some bytes overwritten: a corrupt heap. It does
// not pass on the core's batch reads, so that every read sees the patch.
type patched struct {
	s     addrspace.Space
	at    addrspace.Addr
	bytes []byte
}

func (p *patched) Info() addrspace.Info                   { return p.s.Info() }
func (p *patched) Mappings() []addrspace.Mapping          { return p.s.Mappings() }
func (p *patched) Threads() []addrspace.Thread            { return p.s.Threads() }
func (p *patched) OpenFile(path string) (*os.File, error) { return p.s.OpenFile(path) }
func (p *patched) Warnings() []string                     { return p.s.Warnings() }
func (p *patched) ReadAt(b []byte, a addrspace.Addr) (int, error) {
	n, err := p.s.ReadAt(b, a)
	end := a + addrspace.Addr(n)
	for i, v := range p.bytes {
		if at := p.at + addrspace.Addr(i); at >= a && at < end {
			b[at-a] = v
		}
	}
	return n, err
}

// FuzzCorruptHeap overwrites a few bytes of a real core's heap, of its
// main_arena or of its tcache, and runs the whole analysis on it: whatever
// the bytes, it must end, without a panic, in a report or an error.
func FuzzCorruptHeap(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("needs ptrace permission (run as root) to make a core")
	}
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		f.Skip("gcore (from gdb) is not installed")
	}
	pid, _ := testprog.StartPaused(f, testprog.Build(f, "graph"))
	prefix := filepath.Join(f.TempDir(), "core")
	if out, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		f.Fatalf("gcore: %v\n%s", err, out)
	}
	c, err := corefile.Open(fmt.Sprintf("%s.%d", prefix, pid), corefile.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })
	h, err := heapwalk.Walk(c, heapwalk.Options{})
	if err != nil {
		f.Fatal(err)
	}
	heap := h.Arenas[0].Heaps[0]
	targets := []addrspace.Addr{heap.Start, h.Arenas[0].Addr}
	if len(h.Tcaches) > 0 {
		targets = append(targets, h.Tcaches[0].Addr)
	}
	big := binary.LittleEndian.AppendUint64(nil, 0xfffffffffffff001)
	f.Add(uint8(0), uint32(8), big)                   // the first chunk's size
	f.Add(uint8(0), uint32(0x298), []byte{0x10})      // a small change further on
	f.Add(uint8(1), uint32(0x60), big)                // a bin pointer
	f.Add(uint8(1), uint32(0x10), []byte{0xff, 0xff}) // fastbins
	f.Add(uint8(2), uint32(0x80), big)                // a tcache entry
	f.Fuzz(func(t *testing.T, target uint8, off uint32, data []byte) {
		if len(data) == 0 || len(data) > 64 {
			return
		}
		at := targets[int(target)%len(targets)] + addrspace.Addr(off%(64<<10))
		p := &patched{s: c, at: at, bytes: data}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h, err := heapwalk.Walk(p, heapwalk.Options{})
			if err != nil {
				return
			}
			res := scan.Run(p, h, scan.Options{})
			Build(p, h, res, Options{})
		}()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Fatalf("the analysis of a core with %x at %v does not end", data, at)
		}
	})
}
