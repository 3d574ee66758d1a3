// Package floor measures the least work that any conservative leak finder
// must do on a live process's heap, whatever its design: read every byte
// once, follow the chunk headers, test every word, and look up every word
// that might be a pointer. It gives a lower bound on the time of an
// analysis on this machine, so that a throughput goal can be judged
// against what is possible at all, not only against the speed of reading.
//
// The floor leaves out everything an analysis needs beyond that one pass:
// a table of the chunks, marks, following pointers to chunks read earlier
// (which needs a second read or a store of every pointer), roots,
// classification and the report.
package floor

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/internal/words"
)

// Level is how much of the work a pass does; each level adds a step to the
// one before.
type Level int

const (
	// Read reads the whole heap once, a piece at a time.
	Read Level = iota
	// Headers also follows the chain of chunk headers: the least a heap
	// walk does.
	Headers
	// Words also tests every word of every chunk against the heap's
	// bounds: the least a scan does to find what might be a pointer. It
	// tests a piece's words 4 at a time, with heapsift's own vector code
	// (internal/words), and counts each chunk's from the mask.
	Words
	// Lookups also looks every such word up in a bitmap of chunk starts
	// (one bit per 16 bytes): the least a scan does to tell a pointer to
	// a chunk from other data.
	Lookups
	numLevels
)

var levelNames = [numLevels]string{"read", "headers", "words", "lookups"}

func (l Level) String() string { return levelNames[l] }

// Levels lists every level, in order.
func Levels() []Level { return []Level{Read, Headers, Words, Lookups} }

// PieceSize is how much of the heap one read takes: heapsift's walk reads
// the same, small enough to stay in a CPU's cache while it is parsed.
const PieceSize = 256 << 10

// Heap is the main arena's heap ([heap]) of a stopped process, walked
// once: where its chunks start, and the shares its CPUs take.
type Heap struct {
	pid    int
	lo, hi uint64   // the [heap] mapping
	starts []uint64 // bitmap: a chunk header starts at lo+16*bit
	shares []uint64 // the first chunk of each CPU's share, then the top chunk
	chunks int      // chunks before the top chunk
}

// Load walks the heap [lo, hi) of pid (its [heap] mapping) once, in
// order, to know where its chunks start, and splits it into one share per
// CPU. The process must stay stopped while the Heap is used.
func Load(pid int, lo, hi uint64) (*Heap, error) {
	h := &Heap{pid: pid, lo: lo, hi: hi, starts: make([]uint64, (hi-lo)/16/64+1)}
	buf := make([]byte, 4<<20)
	var base, n uint64 // what buf holds
	var addrs []uint64 // every 4096th chunk, to split the heap
	c := lo
	for c+16 <= hi {
		if c+16 > base+n || c < base {
			base, n = c&^4095, min(uint64(len(buf)), hi-c&^4095)
			if err := read(pid, buf[:n], base); err != nil {
				return nil, err
			}
		}
		size := binary.LittleEndian.Uint64(buf[c+8-base:]) &^ 7
		if size < 16 || size%16 != 0 || size > hi-c {
			return nil, fmt.Errorf("no chunk header at %#x (size field %#x): not a glibc heap", c, size)
		}
		if c+size >= hi-16 { // the top chunk ends the heap
			break
		}
		g := (c - lo) / 16
		h.starts[g/64] |= 1 << (g % 64)
		if h.chunks%4096 == 0 {
			addrs = append(addrs, c)
		}
		h.chunks++
		c += size
	}
	if h.chunks == 0 {
		return nil, errors.New("empty heap")
	}
	cpus := runtime.GOMAXPROCS(0)
	for k := range cpus {
		h.shares = append(h.shares, addrs[len(addrs)*k/cpus])
	}
	h.shares = append(h.shares, c)
	return h, nil
}

// HeapMapping returns pid's [heap] mapping: the main arena's heap.
func HeapMapping(pid int) (lo, hi uint64, err error) {
	maps, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(maps), "\n") {
		if f := strings.Fields(line); len(f) == 6 && f[5] == "[heap]" {
			if _, err := fmt.Sscanf(f[0], "%x-%x", &lo, &hi); err == nil {
				return lo, hi, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("pid %d has no [heap] mapping", pid)
}

// Chunks returns how many chunks the heap holds, its top chunk left out.
func (h *Heap) Chunks() int { return h.chunks }

// Bytes returns the size of the heap.
func (h *Heap) Bytes() uint64 { return h.hi - h.lo }

// Run does one pass at the given level over the whole heap, a share per
// CPU at once, and returns what it found (words within the heap's bounds,
// or pointers to chunk starts) and how long it took. What it finds is
// returned so that no step can be left out by the compiler.
func (h *Heap) Run(level Level) (found uint64, took time.Duration, err error) {
	var wg sync.WaitGroup
	shares := len(h.shares) - 1
	counts, errs := make([]uint64, shares), make([]error, shares)
	t0 := time.Now()
	for k := range shares {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[k], errs[k] = h.share(level, h.shares[k], h.shares[k+1])
		}()
	}
	wg.Wait()
	took = time.Since(t0)
	for _, n := range counts {
		found += n
	}
	return found, took, errors.Join(errs...)
}

// Best returns the best throughput of passes runs at each level, in GB/s
// of heap (10^9 bytes per second). Each pass runs every level in turn, so
// that a slow spell of a shared machine slows them alike; and since each
// level does all the work of the one before, a level is never reported
// faster than the one before it (that would be noise).
func (h *Heap) Best(passes int) ([numLevels]float64, error) {
	var best [numLevels]float64
	for range passes {
		for _, l := range Levels() {
			_, took, err := h.Run(l)
			if err != nil {
				return best, err
			}
			best[l] = max(best[l], float64(h.Bytes())/took.Seconds()/1e9)
		}
	}
	for l := Headers; l < numLevels; l++ {
		best[l] = min(best[l], best[l-1])
	}
	return best, nil
}

// share does one pass over the chunks from first up to stop.
func (h *Heap) share(level Level, first, stop uint64) (uint64, error) {
	buf := make([]byte, PieceSize)
	mask := make([]uint64, PieceSize/8/64)
	lo, span := h.lo, h.hi-h.lo
	starts := h.starts
	var found uint64
	c := first
	for base := first &^ 4095; base < stop; base += PieceSize {
		n := min(PieceSize, h.hi-base)
		if err := read(h.pid, buf[:n], base); err != nil {
			return found, err
		}
		if level == Read {
			found += uint64(buf[0])
			continue
		}
		// Test every word of the piece at once, as heapsift's walk does
		// (with vector instructions: 4 words per instruction).
		ws := wordsOf(buf[:n])
		if level >= Words {
			words.Mask(ws, lo+16, span-16, mask)
		}
		// Follow the headers in this piece. The part of a chunk that lies
		// in the next piece is left out: a floor may do less, never more.
		for c+16 <= base+n && c < stop {
			size := binary.LittleEndian.Uint64(buf[c+8-base:]) &^ 7
			if size < 16 {
				return found, fmt.Errorf("no chunk header at %#x: the heap changed", c)
			}
			if from, to := int(c+16-base)/8, int(min(c+size+8, base+n)-base)/8; level >= Words && to > from {
				// The chunk's words in the mask.
				for g := from >> 6; g <= (to-1)>>6; g++ {
					m := mask[g]
					if g == from>>6 {
						m &= ^uint64(0) << (from & 63)
					}
					if g == (to-1)>>6 && to&63 != 0 {
						m &= 1<<(to&63) - 1
					}
					if level == Words {
						found += uint64(bits.OnesCount64(m))
						continue
					}
					for ; m != 0; m &= m - 1 {
						v := ws[g<<6+bits.TrailingZeros64(m)]
						g := (v - lo - 16) / 16
						found += starts[g/64] >> (g % 64) & 1
					}
				}
			}
			c += size
		}
	}
	return found, nil
}

// wordsOf returns b's whole 8-byte words, in place.
func wordsOf(b []byte) []uint64 {
	if len(b) < 8 {
		return nil
	}
	return unsafe.Slice((*uint64)(unsafe.Pointer(&b[0])), len(b)/8)
}

func read(pid int, buf []byte, a uint64) error {
	local := []unix.Iovec{{Base: &buf[0], Len: uint64(len(buf))}}
	remote := []unix.RemoteIovec{{Base: uintptr(a), Len: len(buf)}}
	if _, err := unix.ProcessVMReadv(pid, local, remote, 0); err != nil {
		return fmt.Errorf("process_vm_readv of pid %d at %#x: %w", pid, a, err)
	}
	return nil
}
