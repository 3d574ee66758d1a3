package ptrace

import (
	"errors"
	"fmt"
	"math"

	"golang.org/x/sys/unix"

	"github.com/heapsift/heapsift/addrspace"
)

// iovMax is IOV_MAX: the most iovecs one process_vm_readv call accepts.
const iovMax = 1024

// A Req is one range for ReadBatch: Buf receives the len(Buf) bytes at
// Addr, and Err is set to nil if all of Buf was read, else to why not
// (wrapping addrspace.ErrUnreadable for memory that is not there).
type Req = addrspace.Req

var _ addrspace.BatchReader = (*Process)(nil)

// ReadAt reads len(b) bytes at addr. Like io.ReaderAt, it returns n <
// len(b) only with an error; memory outside the readable mappings gives
// an error wrapping addrspace.ErrUnreadable that names the address.
//
// It reads with process_vm_readv, one iovec per mapping, and falls back
// to /proc/PID/mem for pages that process_vm_readv refuses. It is safe
// for concurrent use.
func (p *Process) ReadAt(b []byte, addr addrspace.Addr) (int, error) {
	if p.released.Load() {
		return 0, fmt.Errorf("read at %v: %w", addr, ErrDetached)
	}
	if err := p.Gone(); err != nil {
		return 0, fmt.Errorf("read at %v: %w", addr, err)
	}
	n := 0
	for n < len(b) {
		a := addr + addrspace.Addr(n)
		m := p.readable(a, addr)
		if m == nil {
			return n, unreadable(a, nil)
		}
		k := uint64(len(b) - n)
		if rest := uint64(m.End - a); k > rest {
			k = rest
		}
		got, err := p.readRange(b[n:n+int(k)], a)
		n += got
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ReadBatch fills many ranges at once: it issues one process_vm_readv
// per up to 1024 (IOV_MAX) pieces, a piece being the part of a request
// that lies in one mapping. It sets each request's Err, and returns nil
// if every request was read in full, else an error that counts the
// failures and wraps the first one. It is safe for concurrent use (on
// distinct requests).
func (p *Process) ReadBatch(reqs []Req) error {
	sc, _ := p.batch.Get().(*batchBufs)
	if sc == nil {
		sc = new(batchBufs)
	}
	defer p.batch.Put(sc)
	segs := sc.segs[:0]
	defer func() { sc.segs = segs[:0] }()
	for i := range reqs {
		r := &reqs[i]
		r.Err = nil
		if p.released.Load() {
			r.Err = fmt.Errorf("read at %v: %w", r.Addr, ErrDetached)
			continue
		}
		if err := p.Gone(); err != nil {
			r.Err = fmt.Errorf("read at %v: %w", r.Addr, err)
			continue
		}
		first := len(segs)
		for off := 0; off < len(r.Buf); {
			a := r.Addr + addrspace.Addr(off)
			m := p.readable(a, r.Addr)
			if m == nil {
				r.Err = unreadable(a, nil)
				segs = segs[:first]
				break
			}
			k := uint64(len(r.Buf) - off)
			if rest := uint64(m.End - a); k > rest {
				k = rest
			}
			segs = append(segs, batchSeg{i, a, r.Buf[off : off+int(k)]})
			off += int(k)
		}
	}

	local, remote := sc.local[:0], sc.remote[:0]
	defer func() { sc.local, sc.remote = local[:0], remote[:0] }()
	for len(segs) > 0 {
		batch := segs[:min(len(segs), iovMax)]
		if p.noVMReadv.Load() {
			batch = batch[:1]
		}
		local, remote = local[:0], remote[:0]
		for _, s := range batch {
			local = append(local, unix.Iovec{Base: &s.buf[0], Len: uint64(len(s.buf))})
			remote = append(remote, unix.RemoteIovec{Base: uintptr(s.addr), Len: len(s.buf)})
		}
		n := 0
		if !p.noVMReadv.Load() {
			var err error
			if n, err = unix.ProcessVMReadv(p.memTID, local, remote, 0); err != nil {
				n = 0
				p.vmReadvFailed(err)
			}
		}
		// The kernel copies iovecs in order and stops at the first
		// fault: everything before it is complete.
		done := 0
		for done < len(batch) && n >= len(batch[done].buf) {
			n -= len(batch[done].buf)
			done++
		}
		if done < len(batch) {
			s := batch[done]
			if _, err := p.readRange(s.buf, s.addr); err != nil && reqs[s.req].Err == nil {
				reqs[s.req].Err = err
				if errors.Is(err, ErrExited) {
					for i := range reqs {
						if reqs[i].Err == nil {
							reqs[i].Err = err
						}
					}
					break
				}
			}
			done++
		}
		segs = segs[done:]
	}

	failed := 0
	var first error
	for i := range reqs {
		if reqs[i].Err != nil {
			if first == nil {
				first = reqs[i].Err
			}
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("read batch: %d of %d ranges failed, first: %w", failed, len(reqs), first)
	}
	return nil
}

// batchSeg is one piece of a batch request that lies in one mapping.
type batchSeg struct {
	req  int
	addr addrspace.Addr
	buf  []byte
}

// batchBufs are ReadBatch's scratch slices, reused across calls (a scan
// makes thousands of them).
type batchBufs struct {
	segs   []batchSeg
	local  []unix.Iovec
	remote []unix.RemoteIovec
}

// readable returns the readable mapping that holds a, or nil. start is
// where the read began, to detect a read that wraps around. A Missing
// range (not in a fork snapshot's copy) is not readable.
func (p *Process) readable(a, start addrspace.Addr) *addrspace.Mapping {
	if a < start {
		return nil
	}
	m := addrspace.Find(p.maps, a)
	if m == nil || m.Perm&addrspace.Read == 0 || m.Missing {
		return nil
	}
	return m
}

// readRange reads b at a, which lie in one mapping: with process_vm_readv
// while it makes progress, else from /proc/PID/mem.
func (p *Process) readRange(b []byte, a addrspace.Addr) (int, error) {
	n := 0
	for n < len(b) {
		at := a + addrspace.Addr(n)
		if !p.noVMReadv.Load() {
			local := []unix.Iovec{{Base: &b[n], Len: uint64(len(b) - n)}}
			remote := []unix.RemoteIovec{{Base: uintptr(at), Len: len(b) - n}}
			k, err := unix.ProcessVMReadv(p.memTID, local, remote, 0)
			if err == nil && k > 0 {
				n += k
				continue
			}
			if err == unix.ESRCH {
				p.markGone() // process_vm_readv: no such process
				return n, fmt.Errorf("read at %v: %w", at, ErrExited)
			}
			p.vmReadvFailed(err)
		}
		k, err := p.readMem(b[n:], at)
		n += k
		if k == 0 {
			if p.checkGone(); p.Gone() != nil {
				return n, fmt.Errorf("read at %v: %w", at, p.Gone())
			}
			return n, unreadable(at, err)
		}
	}
	return n, nil
}

// vmReadvFailed turns process_vm_readv off for good if the kernel does not
// offer it to us at all (no such syscall, or forbidden by a security
// policy); a fault on some pages is not such a reason.
func (p *Process) vmReadvFailed(err error) {
	if err == unix.ENOSYS || err == unix.EPERM {
		p.noVMReadv.Store(true)
	}
}

// readMem reads b at a from /proc/PID/mem, as far as it can.
func (p *Process) readMem(b []byte, a addrspace.Addr) (int, error) {
	if p.mem == nil {
		return 0, errors.New("no /proc/PID/mem")
	}
	if uint64(a) > math.MaxInt64 {
		return 0, errors.New("address beyond /proc/PID/mem offsets")
	}
	return p.mem.ReadAt(b, int64(a))
}

// unreadable is the error for memory at a that cannot be read.
func unreadable(a addrspace.Addr, cause error) error {
	if cause != nil {
		return fmt.Errorf("read at %v: %w (%v)", a, addrspace.ErrUnreadable, cause)
	}
	return fmt.Errorf("read at %v: %w", a, addrspace.ErrUnreadable)
}
