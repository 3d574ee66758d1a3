package heapwalk

import (
	"encoding/binary"

	"github.com/heapsift/heapsift/addrspace"
)

// window reads a region sequentially through a large buffer, so that a
// walk over millions of chunk headers costs a few big reads.
type window struct {
	s          addrspace.Space
	start, end addrspace.Addr // the region
	base       addrspace.Addr // address of buf[0]
	buf        []byte
}

const windowSize = 1 << 20

func newWindow(s addrspace.Space, start, end addrspace.Addr) *window {
	return &window{s: s, start: start, end: end}
}

// u64 reads the word at a, which must lie in the region.
func (w *window) u64(a addrspace.Addr) (uint64, error) {
	if a < w.base || a+8 > w.base+addrspace.Addr(len(w.buf)) {
		if err := w.fill(a); err != nil {
			return 0, err
		}
	}
	return binary.LittleEndian.Uint64(w.buf[a-w.base:]), nil
}

func (w *window) fill(a addrspace.Addr) error {
	n := min(uint64(w.end-a), windowSize)
	if n < 8 {
		n = 8
	}
	if cap(w.buf) < int(n) {
		w.buf = make([]byte, n)
	}
	w.buf = w.buf[:n]
	w.base = a
	if _, err := w.s.ReadAt(w.buf, a); err != nil {
		w.buf = w.buf[:0]
		return err
	}
	return nil
}
