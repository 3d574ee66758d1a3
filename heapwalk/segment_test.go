package heapwalk

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/corefile"
	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/ptrace"
)

// walkedSegment is what walkSegment put in the table, comparable.
type walkedSegment struct {
	addr, size []uint64
	state      []State
	warnings   []string
	cached     int // chunks whose pointers the walk cached
}

// candAny reports whether some aligned word of b may point into a chunk:
// the plain test that the walk's cache must agree with.
func candAny(c *candidates, b []byte) bool {
	for _, v := range addrspace.Words(b) {
		if v-c.lo < c.span && addrspace.Find(c.ranges, addrspace.Addr(v)) != nil {
			return true
		}
	}
	return false
}

// walkFake walks the fake heap [start, end) with top at top, in the
// given number of parts of at least minPart bytes.
func walkFake(t *testing.T, f *fakeSpace, start, end, top uint64, parts int, minPart uint64) walkedSegment {
	t.Helper()
	w := &walker{s: f, h: &Heap{}, maps: f.Mappings(), parts: parts, minPart: minPart}
	w.cand = newCandidates(w.maps)
	w.h.Chunks.reserve(len(f.mem)/16 + 4096)
	ar := &Arena{Addr: 0x1000, Main: true, Top: addrspace.Addr(top)}
	w.walkSegment(ar, addrspace.Addr(start), addrspace.Addr(end))
	c := &w.h.Chunks
	c.seal()
	if !c.indexPointers() {
		t.Errorf("%d parts: the pointer cache did not add up and was dropped", parts)
	}
	ws := walkedSegment{cached: checkCache(t, fmt.Sprintf("%d parts: ", parts), c, f, &w.cand)}
	for i := range c.Len() {
		ws.addr = append(ws.addr, uint64(c.Addr(i)))
		ws.size = append(ws.size, c.Size(i))
		ws.state = append(ws.state, c.State(i))
		if c.NoPointers(i) && candAny(&w.cand, f.mem[uint64(c.User(i))-f.base:uint64(c.Addr(i))+c.Size(i)+8-f.base]) {
			t.Errorf("%d parts: chunk %v is marked free of pointers, but holds one", parts, c.Addr(i))
		}
	}
	ws.warnings = w.h.Warnings
	return ws
}

// fakeHeap builds a heap of random chunks in f from start, each filled
// by fill, and returns where top is.
func fakeHeap(f *fakeSpace, start uint64, rng *rand.Rand, sizes func() uint64, fill func(user, size uint64)) (top uint64) {
	return fakeHeapTo(f, start, f.base+uint64(len(f.mem)), rng, sizes, fill)
}

// fakeHeapTo is fakeHeap in [start, end).
func fakeHeapTo(f *fakeSpace, start, end uint64, rng *rand.Rand, sizes func() uint64, fill func(user, size uint64)) (top uint64) {
	c := start
	prevFree, prevSize := false, uint64(0)
	for {
		size := sizes()
		if c+size+4096 > end {
			break
		}
		hdr := size
		if !prevFree {
			hdr |= 1
		} else {
			f.put(c, prevSize)
		}
		f.put(c+8, hdr)
		fill(c+16, size)
		prevFree = rng.IntN(8) == 0
		prevSize = size
		c += size
	}
	f.put(c+8, (end-c)|1) // top
	return c
}

// TestWalkInPartsIsExact: however the memory tricks the guessed starts of
// the parts, the parallel walk lists exactly what a walk in order lists.
func TestWalkInPartsIsExact(t *testing.T) {
	const base, size = 0x555555560000, 4 << 20
	fills := map[string]func(f *fakeSpace, rng *rand.Rand) func(user, size uint64){
		// Pointers and 0x5a bytes, like bigheap.
		"plain": func(f *fakeSpace, rng *rand.Rand) func(uint64, uint64) {
			return func(u, n uint64) {
				for a := u; a+8 <= u+n-8; a += 8 {
					f.put(a, 0x5a5a5a5a5a5a5a5a)
				}
				f.put(u, base+uint64(rng.IntN(size)))
			}
		},
		// Up to 9 pointers of every kind: to chunk starts, unaligned,
		// to the word itself, outside the heap; between words that look
		// like chunk headers, so that guessed starts miss and walks in
		// order join them.
		"pointers": func(f *fakeSpace, rng *rand.Rand) func(uint64, uint64) {
			return func(u, n uint64) {
				for a := u; a+8 <= u+n-8; a += 8 {
					f.put(a, uint64(0x21+16*rng.IntN(2)))
				}
				for k := range uint64(rng.IntN(10)) {
					a := u + 8*uint64(rng.IntN(int(n/8-1)))
					switch k % 4 {
					case 0, 1:
						f.put(a, (base+uint64(rng.IntN(size)))&^15)
					case 2:
						f.put(a, base+uint64(rng.IntN(size)))
					default:
						if rng.IntN(8) == 0 {
							f.put(a, a)
						} else {
							f.put(a, 0x7f0000000000+uint64(rng.IntN(size))&^15)
						}
					}
				}
			}
		},
		// Every word looks like a chunk header of 32 or 48 bytes.
		"headers": func(f *fakeSpace, rng *rand.Rand) func(uint64, uint64) {
			return func(u, n uint64) {
				for a := u; a+8 <= u+n-8; a += 8 {
					f.put(a, uint64(0x21+16*rng.IntN(2)))
				}
			}
		},
		// Each chunk holds a fake chain of headers that ends inside it.
		"chains": func(f *fakeSpace, rng *rand.Rand) func(uint64, uint64) {
			return func(u, n uint64) {
				for a := u; a+16 <= u+n-8; a += 32 {
					f.put(a, 0)
					f.put(a+8, 0x21)
				}
			}
		},
		// Fake headers that jump 1 MiB, where there is another one, until
		// they leave the heap: each start tried runs far away.
		"jumps": func(f *fakeSpace, rng *rand.Rand) func(uint64, uint64) {
			return func(u, n uint64) {
				for a := u; a+8 <= u+n-8; a += 8 {
					f.put(a, 1<<20|1)
				}
			}
		},
		// Fake headers that lead to the heap's end.
		"far": func(f *fakeSpace, rng *rand.Rand) func(uint64, uint64) {
			return func(u, n uint64) {
				for a := u; a+16 <= u+n-8; a += 16 {
					f.put(a+8, (base+size-(a))&^15|1)
				}
			}
		},
	}
	sizes := map[string]func(rng *rand.Rand) func() uint64{
		"small": func(rng *rand.Rand) func() uint64 { return func() uint64 { return 32 + 16*uint64(rng.IntN(31)) } },
		"mixed": func(rng *rand.Rand) func() uint64 {
			return func() uint64 {
				if rng.IntN(50) == 0 {
					return 16 << 10 * uint64(1+rng.IntN(8))
				}
				return 32 + 16*uint64(rng.IntN(31))
			}
		},
	}
	for fname, fill := range fills {
		for sname, sz := range sizes {
			t.Run(fname+"/"+sname, func(t *testing.T) {
				rng := rand.New(rand.NewPCG(1, uint64(len(fname+sname))))
				f := &fakeSpace{base: base, mem: make([]byte, size)}
				top := fakeHeap(f, base, rng, sz(rng), fill(f, rng))
				want := walkFake(t, f, base, base+size, top, 1, 0)
				if len(want.addr) < 1000 || want.state[len(want.state)-1] != Top || len(want.warnings) > 0 {
					t.Fatalf("in order: %d chunks, last %v, warnings %q", len(want.addr), want.state[len(want.state)-1], want.warnings)
				}
				if fname == "pointers" && want.cached < len(want.addr)/4 {
					t.Errorf("in order: %d of %d chunks cached", want.cached, len(want.addr))
				}
				for _, parts := range []int{2, 3, 7, 64} {
					f.read.Store(0)
					got := walkFake(t, f, base, base+size, top, parts, 4096)
					compareWalks(t, fmt.Sprintf("%d parts", parts), got, want)
					// Guesses and walks in order after a missed guess
					// read some parts twice, never more (and each part
					// reads whole pieces, bigger than these tiny parts).
					if r := f.read.Load(); r > 3*size+uint64(2*parts*pieceSize) {
						t.Errorf("%d parts read %d bytes of a %d-byte heap", parts, r, size)
					}
				}
				// A corrupt header in the middle ends the walk there, in
				// order and in parts alike.
				bad := want.addr[len(want.addr)/2]
				f.put(bad+8, 0x5a5a5a5a5a5a5a5a)
				want = walkFake(t, f, base, base+size, top, 1, 0)
				if len(want.warnings) != 1 || !strings.Contains(want.warnings[0], "corrupt chunk header") {
					t.Fatalf("corrupt header: warnings %q", want.warnings)
				}
				for _, parts := range []int{2, 5} {
					got := walkFake(t, f, base, base+size, top, parts, 4096)
					compareWalks(t, fmt.Sprintf("corrupt, %d parts", parts), got, want)
				}
			})
		}
	}
}

func compareWalks(t *testing.T, what string, got, want walkedSegment) {
	t.Helper()
	if !slices.Equal(got.addr, want.addr) || !slices.Equal(got.size, want.size) || !slices.Equal(got.state, want.state) {
		n := 0
		for n < min(len(got.addr), len(want.addr)) && got.addr[n] == want.addr[n] && got.state[n] == want.state[n] {
			n++
		}
		t.Errorf("%s: %d chunks, in order %d; first difference at index %d", what, len(got.addr), len(want.addr), n)
	}
	if !slices.Equal(got.warnings, want.warnings) {
		t.Errorf("%s: warnings %q, in order %q", what, got.warnings, want.warnings)
	}
}

// TestWalkInPartsLive walks every fixture's live heap in order and in
// small parts, and compares every chunk; for some, on a gcore core too.
func TestWalkInPartsLive(t *testing.T) {
	testprog.EachLiveFixture(t, func(t *testing.T, name string, pid int, _ *testprog.Truth) {
		p, err := ptrace.Attach(pid)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Detach() }) // when a check fails
		compareSpaceWalks(t, p)
		p.Detach()
		if gcore, err := exec.LookPath("gcore"); err == nil && (name == "arenas" || name == "mmapped" || name == "cpp") {
			// A core is read by copying from its mapped file, by every
			// part at once.
			prefix := filepath.Join(t.TempDir(), "core")
			if out, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
				t.Fatalf("gcore: %v\n%s", err, out)
			}
			c, err := corefile.Open(fmt.Sprintf("%s.%d", prefix, pid), corefile.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			compareSpaceWalks(t, c)
		}
	})
}

// compareSpaceWalks walks s in order and in small parts, and compares
// every chunk.
func compareSpaceWalks(t *testing.T, s addrspace.Space) {
	t.Helper()
	seq, err := Walk(s, Options{parts: 1})
	if err != nil {
		t.Fatal(err)
	}
	par, err := Walk(s, Options{parts: 5, minPart: 4096})
	if err != nil {
		t.Fatal(err)
	}
	a, b := &seq.Chunks, &par.Chunks
	if a.Len() != b.Len() {
		t.Fatalf("%d chunks in order, %d in parts", a.Len(), b.Len())
	}
	for i := range a.Len() {
		if a.Addr(i) != b.Addr(i) || a.Size(i) != b.Size(i) || a.State(i) != b.State(i) || a.Mmapped(i) != b.Mmapped(i) {
			t.Fatalf("chunk %d: in order %v %#x %v, in parts %v %#x %v", i, a.Addr(i), a.Size(i), a.State(i), b.Addr(i), b.Size(i), b.State(i))
		}
	}
	if !slices.Equal(seq.Warnings, par.Warnings) {
		t.Errorf("warnings in order %q, in parts %q", seq.Warnings, par.Warnings)
	}
}

// TestWalkInPartsDense: when the walk in order has found more chunks
// before it meets a part's guessed walk than the guess had, so that the
// part's slots cannot hold both, the part is walked in order to its end.
// Only 16-byte chunks are that dense: a run of them (fenceposts, to the
// walk) leads up to past the middle of the heap.
func TestWalkInPartsDense(t *testing.T) {
	const base, size = 0x555555560000, 1 << 20
	f := &fakeSpace{base: base, mem: make([]byte, size)}
	mid := uint64(base+size/2) &^ 4095
	c := uint64(base)
	for ; c < mid+4096; c += 16 {
		f.put(c+8, 16|1)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	top := fakeHeap(f, c, rng, func() uint64 { return 32 + 16*uint64(rng.IntN(31)) }, func(uint64, uint64) {})
	want := walkFake(t, f, base, base+size, top, 1, 0)
	if len(want.warnings) > 0 || want.state[len(want.state)-1] != Top {
		t.Fatalf("in order: warnings %q", want.warnings)
	}
	got := walkFake(t, f, base, base+size, top, 2, 4096)
	compareWalks(t, "2 parts", got, want)
}

// FuzzWalkInParts: on any memory, the walk in parts lists what the walk in
// order lists. The input is repeated to fill a 64 KiB heap (so that its
// patterns recur where parts start), with a real chunk chain over it when
// chain is set.
func FuzzWalkInParts(f *testing.F) {
	f.Add([]byte{0x21, 0, 0, 0, 0, 0, 0, 0}, uint16(100), true)
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 0, 0x31, 0, 0, 0, 0, 0, 0, 0}, uint16(4000), false)
	f.Add([]byte("\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x41\x00\x00\x00\x00\x00\x00\x00"), uint16(0), true)
	// A pointer into the heap, then a header: chunks with pointers to cache.
	f.Add(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 0x555555560040), 0x21), uint16(0), false)
	f.Fuzz(func(t *testing.T, pattern []byte, topAt uint16, chain bool) {
		const base, size = 0x555555560000, 64 << 10
		if len(pattern) == 0 {
			return
		}
		f := &fakeSpace{base: base, mem: make([]byte, size)}
		for i := range f.mem {
			f.mem[i] = pattern[i%len(pattern)]
		}
		top := base + uint64(topAt)*16%size
		if chain {
			rng := rand.New(rand.NewPCG(uint64(len(pattern)), uint64(topAt)))
			top = fakeHeap(f, base, rng, func() uint64 { return 32 + 16*uint64(rng.IntN(64)) }, func(uint64, uint64) {})
		}
		want := walkFake(t, f, base, base+size, top, 1, 0)
		for _, parts := range []int{2, 5} {
			compareWalks(t, fmt.Sprintf("%d parts", parts), walkFake(t, f, base, base+size, top, parts, 4096), want)
		}
	})
}

// TestMmappedHugeSize: a page that looks like an mmapped chunk's header
// but claims nearly 2^64 bytes is no chunk (the end it implies wraps
// around below the page; it once sent the search backwards forever).
func TestMmappedHugeSize(t *testing.T) {
	f := &fakeSpace{base: 0x7f0000000000, mem: make([]byte, 64<<10)}
	f.put(f.base+8, 0xfffffffffffff002)
	f.put(f.base+8192+8, 0x2002) // a real one: 8 KiB
	w := &walker{s: f, h: &Heap{NMmaps: -1}, maps: f.Mappings()}
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.findMmapped()
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("findMmapped does not return")
	}
	c := &w.h.Chunks
	c.seal()
	if c.Len() != 1 || c.Addr(0) != addrspace.Addr(f.base+8192) || c.Size(0) != 0x2000 {
		t.Errorf("found %d chunks, want the one at %#x", c.Len(), f.base+8192)
	}
}
