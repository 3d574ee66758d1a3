package heapwalk

import (
	"encoding/binary"
	"sync"
	"sync/atomic"

	"github.com/heapsift/heapsift/addrspace"
)

// reader reads a segment sequentially in pieces small enough to stay in the
// CPU's own cache while the walk parses them: the kernel's copy leaves the
// piece in this core's cache, so the headers the walk then reads, one per
// chunk at irregular strides, are cache hits. (Reading ahead from another
// goroutine was slower: every header became a cache miss on another core.)
//
// Once the walk is done with a piece, a checker goroutine looks through
// the user data of its in-use chunks, for chunks that hold no word that
// could point into a chunk: the scan need not read those again.
type reader struct {
	s          addrspace.Space
	start, end addrspace.Addr
	cur        piece
	job        checkJob // the in-use chunks of cur, for the checker
	chk        *checker
	progress   *atomic.Uint64 // bytes read, or nil
}

// A piece is the bytes of [base, base+len(buf)), or the error reading them.
type piece struct {
	base addrspace.Addr
	buf  []byte
	err  error
}

const (
	pieceSize    = 256 << 10
	piecesInPool = 8
)

func newReader(s addrspace.Space, start, end addrspace.Addr, cand *candidates) *reader {
	return &reader{s: s, start: start, end: end, chk: newChecker(cand)}
}

// at returns the piece that holds the 8 bytes at a, which must be
// 8-aligned and not below the previous call's address; ok is false when
// the region ends before a+8.
func (r *reader) at(a addrspace.Addr) (p piece, ok bool) {
	if a >= r.cur.base && a+8 <= r.cur.base+addrspace.Addr(len(r.cur.buf)) {
		return r.cur, true
	}
	if a+8 > r.end {
		return piece{}, false
	}
	buf := r.chk.next(r.cur.buf, r.job)
	r.job = checkJob{}
	// Start the piece at a's page, so that a chunk's header and the
	// headers after it share it.
	base := max(a&^4095, r.start)
	buf = buf[:min(uint64(r.end-base), pieceSize)]
	_, err := r.s.ReadAt(buf, base)
	if r.progress != nil {
		r.progress.Add(uint64(len(buf)))
	}
	r.cur = piece{base, buf, err}
	return r.cur, true
}

// note records that chunk i, whose header is at c, lies wholly in the
// current piece, right after the chunks noted before it there.
func (r *reader) note(i int, c addrspace.Addr) {
	if r.job.n == 0 {
		r.job.first, r.job.off = int32(i), uint32(c-r.cur.base)
	}
	r.job.n++
}

// finish hands over the last piece, waits for the checker, and marks the
// chunks it found free of pointers.
func (r *reader) finish(c *Chunks) {
	r.chk.next(r.cur.buf, r.job)
	for _, i := range r.chk.wait() {
		c.setNoPointers(int(i), true)
	}
}

// checkJob names the chunks that lie wholly in one piece: n chunks from
// chunk first, whose header is at offset off. The checker finds them by
// their size fields, as the walk did.
type checkJob struct {
	first int32
	off   uint32
	n     int32
}

// checker runs candidates.any over the chunks of pieces, on a goroutine of
// its own, and collects the chunks without pointers.
type checker struct {
	cand  *candidates
	pool  chan []byte
	jobs  chan pieceJob
	wg    sync.WaitGroup
	found []int32
}

type pieceJob struct {
	buf []byte
	checkJob
}

func newChecker(cand *candidates) *checker {
	c := &checker{cand: cand, pool: make(chan []byte, piecesInPool), jobs: make(chan pieceJob, piecesInPool)}
	for range piecesInPool {
		c.pool <- make([]byte, pieceSize)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for j := range c.jobs {
			c.check(j)
			c.pool <- j.buf[:cap(j.buf)]
		}
	}()
	return c
}

// check looks through the user data of a job's chunks (free ones too,
// which costs nothing: the flag only matters for chunks in use).
func (c *checker) check(j pieceJob) {
	off := uint64(j.off)
	for k := range j.n {
		size := binary.LittleEndian.Uint64(j.buf[off+8:]) &^ 7
		if size > 16 && !c.cand.any(j.buf[off+16:off+size+8]) {
			c.found = append(c.found, j.first+k)
		}
		off += size
	}
}

// next hands buf (nil at first) and its job to the checker and returns a
// free buffer.
func (c *checker) next(buf []byte, job checkJob) []byte {
	if buf != nil {
		if job.n == 0 {
			c.pool <- buf[:cap(buf)]
		} else {
			c.jobs <- pieceJob{buf, job}
		}
	}
	return <-c.pool
}

// wait stops the checker and returns the chunks it found without pointers.
func (c *checker) wait() []int32 {
	close(c.jobs)
	c.wg.Wait()
	return c.found
}
