package bench

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/bench/floor"
)

// heapRange returns the [heap] mapping of pid.
func heapRange(b *testing.B, pid int) (lo, hi uint64) {
	b.Helper()
	lo, hi, err := floor.HeapMapping(pid)
	if err != nil {
		b.Fatal(err)
	}
	return lo, hi
}

// BenchmarkReadCeiling measures how fast another process's heap can be
// read at all, the ceiling for everything heapsift does: process_vm_readv
// and pread of /proc/PID/mem, with several buffer sizes, and summing the
// words of a local buffer (the cost of merely touching the bytes).
func BenchmarkReadCeiling(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs ptrace permission (run as root)")
	}
	h := startBigheap(b, chunkCounts()[0])
	lo, hi := heapRange(b, h.pid)
	size := int64(hi - lo)
	for _, bufSize := range []int{256 << 10, 1 << 20, 4 << 20, 16 << 20} {
		buf := make([]byte, bufSize)
		b.Run(fmt.Sprintf("process_vm_readv/buf=%dKiB", bufSize>>10), func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; i < b.N; i++ {
				for a := lo; a < hi; a += uint64(bufSize) {
					n := min(uint64(bufSize), hi-a)
					local := []unix.Iovec{{Base: &buf[0], Len: n}}
					remote := []unix.RemoteIovec{{Base: uintptr(a), Len: int(n)}}
					if _, err := unix.ProcessVMReadv(h.pid, local, remote, 0); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	b.Run("process_vm_readv_2_threads/buf=4096KiB", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			var wg sync.WaitGroup
			half := (hi - lo) / 2 &^ 4095
			for _, r := range [][2]uint64{{lo, lo + half}, {lo + half, hi}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 4<<20)
					for a := r[0]; a < r[1]; a += uint64(len(buf)) {
						n := min(uint64(len(buf)), r[1]-a)
						local := []unix.Iovec{{Base: &buf[0], Len: n}}
						remote := []unix.RemoteIovec{{Base: uintptr(a), Len: int(n)}}
						unix.ProcessVMReadv(h.pid, local, remote, 0)
					}
				}()
			}
			wg.Wait()
		}
	})
	buf := make([]byte, 4<<20)
	b.Run("pread_proc_mem/buf=4096KiB", func(b *testing.B) {
		f, err := os.Open(fmt.Sprintf("/proc/%d/mem", h.pid))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			for a := lo; a < hi; a += uint64(len(buf)) {
				n := min(uint64(len(buf)), hi-a)
				if _, err := f.ReadAt(buf[:n], int64(a)); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("sum_local/buf=4096KiB", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		var s uint64
		for i := 0; i < b.N; i++ {
			s += sum(buf)
		}
		_ = s
	})
}

//go:noinline
func sum(b []byte) uint64 {
	var s0, s1 uint64
	for i := 0; i+16 <= len(b); i += 16 {
		s0 += binary.LittleEndian.Uint64(b[i:])
		s1 += binary.LittleEndian.Uint64(b[i+8:])
	}
	return s0 + s1
}
