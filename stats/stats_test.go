package stats

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/scan"
)

// fakeChunk is one chunk of a synthetic heap.
type fakeChunk struct {
	addr, size uint64
	st         heapwalk.State
	mmapped    bool
}

// fakeChunks implements chunkList.
type fakeChunks []fakeChunk

func (f fakeChunks) Len() int                   { return len(f) }
func (f fakeChunks) Addr(i int) addrspace.Addr  { return addrspace.Addr(f[i].addr) }
func (f fakeChunks) Size(i int) uint64          { return f[i].size }
func (f fakeChunks) State(i int) heapwalk.State { return f[i].st }
func (f fakeChunks) Mmapped(i int) bool         { return f[i].mmapped }
func (f fakeChunks) end() uint64                { return f[len(f)-1].addr + f[len(f)-1].size }
func (f fakeChunks) seg() heapwalk.Segment {
	return heapwalk.Segment{Start: f.Addr(0), End: addrspace.Addr(f.end())}
}
func (f fakeChunks) add(c fakeChunks) fakeChunks    { return append(append(fakeChunks{}, f...), c...) }
func spec(size uint64, st heapwalk.State) fakeChunk { return fakeChunk{size: size, st: st} }

// lay places chunks one after the other from base.
func lay(base uint64, specs ...fakeChunk) fakeChunks {
	out := make(fakeChunks, len(specs))
	for i, s := range specs {
		s.addr = base
		base += s.size
		out[i] = s
	}
	return out
}

const (
	inUse    = heapwalk.InUse
	tcache   = heapwalk.FreeTcache
	fastbin  = heapwalk.FreeFastbin
	unsorted = heapwalk.FreeUnsorted
	small    = heapwalk.FreeSmall
	large    = heapwalk.FreeLarge
	top      = heapwalk.Top
)

func TestFreePages(t *testing.T) {
	for _, c := range []struct{ a, size, want uint64 }{
		{0x10000, 0x1000, 0},           // a page, but the header eats into it
		{0x10000, 0x102f + 1, 0},       // 4144 bytes: past the header only 4096-48
		{0x10000 - 48, 0x1030, 0x1000}, // the header ends exactly at a page
		{0x10010, 0x3000, 0x2000},      // pages 0x11000-0x13000
		{0x10000 - 48, 0x102f, 0},      // one byte short
		{0x10000 - 48, 0x2030 + 16, 0x2000},
	} {
		if got := freePages(c.a, c.size); got != c.want {
			t.Errorf("freePages(%#x, %#x) = %#x, want %#x", c.a, c.size, got, c.want)
		}
	}
	for _, c := range []struct{ size, want uint64 }{{0, 0}, {32, 0}, {33, 0}, {4096 + 32, 0}, {4096 + 33, 4096}, {0x21000, 0x20000}} {
		if got := topTrim(c.size); got != c.want {
			t.Errorf("topTrim(%#x) = %#x, want %#x", c.size, got, c.want)
		}
	}
}

func TestTrimmable(t *testing.T) {
	const base = 0x100000
	for _, c := range []struct {
		name      string
		chunks    fakeChunks
		main      bool
		bins, top uint64
	}{
		{"a free chunk", lay(base, spec(0x40, inUse), spec(0x3000, large), spec(0x40, inUse), spec(0x1000, top)), true,
			freePages(base+0x40, 0x3000), topTrim(0x1000)},
		{"fastbins merge with their neighbours", lay(base, spec(0x40, inUse), spec(0x20, fastbin), spec(0x1fe0, unsorted),
			spec(0x20, fastbin), spec(0x30, fastbin), spec(0x40, inUse), spec(0x1000, top)), true,
			freePages(base+0x40, 0x20+0x1fe0+0x20+0x30), topTrim(0x1000)},
		{"without a fastbin, bins stand alone", lay(base, spec(0x40, inUse), spec(0x1800, unsorted), spec(0x1800, large),
			spec(0x40, inUse), spec(0x1000, top)), true,
			freePages(base+0x40, 0x1800) + freePages(base+0x1840, 0x1800), topTrim(0x1000)},
		{"a tcache chunk does not merge", lay(base, spec(0x40, inUse), spec(0x1800, large), spec(0x20, tcache),
			spec(0x20, fastbin), spec(0x1800, large), spec(0x40, inUse), spec(0x1000, top)), true,
			freePages(base+0x40, 0x1800) + freePages(base+0x1860, 0x1820), topTrim(0x1000)},
		{"fastbins next to top join it", lay(base, spec(0x40, inUse), spec(0x2000, large), spec(0x20, fastbin),
			spec(0x1000, top)), true, 0, topTrim(0x3020)},
		{"a binned chunk before top without a fastbin stays", lay(base, spec(0x40, inUse), spec(0x2000, large),
			spec(0x1000, top)), true, freePages(base+0x40, 0x2000), topTrim(0x1000)},
		{"a thread arena's top is not trimmed", lay(base, spec(0x40, inUse), spec(0x3000, large), spec(0x40, inUse),
			spec(0x20, fastbin), spec(0x10000, top)), false, freePages(base+0x40, 0x3000), 0},
		{"small chunks give nothing", lay(base, spec(0x40, inUse), spec(0x400, small), spec(0x40, inUse),
			spec(0x40, fastbin), spec(0x40, inUse), spec(0x20, top)), true, 0, 0},
	} {
		r := trimmable(c.chunks, 0, len(c.chunks), c.main)
		if r.binned != c.bins || r.top != c.top {
			t.Errorf("%s: binned %#x top %#x, want %#x and %#x", c.name, r.binned, r.top, c.bins, c.top)
		}
	}
}

// testHeap is a main arena with every kind of chunk, a thread arena with
// a header and a fencepost, and two mmapped chunks.
func testHeap() ([]heapwalk.Arena, fakeChunks) {
	mainChunks := lay(0x555555559000,
		spec(0x290, heapwalk.TcacheStruct), spec(0x30, inUse), spec(0x30, tcache), spec(0x20, fastbin),
		spec(0x40, inUse), spec(0x110, small), spec(0x40, inUse), spec(0x5000, large), spec(0x40, inUse),
		spec(0x800, unsorted), spec(0x50, inUse), spec(0x2d2d0, top))
	const hp = 0x7ffff0000000
	threadChunks := lay(hp+0x8d0, spec(0x290, heapwalk.TcacheStruct), spec(0x100, inUse), spec(0x20, fastbin),
		spec(0x3000, large), spec(0x100, inUse), spec(0x10, heapwalk.Fencepost))
	threadChunks = threadChunks.add(lay(threadChunks.end()+0x10, spec(0x1d000-(threadChunks.end()+0x10-hp), top)))
	mm := fakeChunks{{addr: 0x7ffff7000010, size: 0x21000 - 0x10, st: inUse, mmapped: true},
		{addr: 0x7ffff7100000, size: 0x40000, st: inUse, mmapped: true}}
	all := mainChunks.add(threadChunks).add(mm)
	arenas := []heapwalk.Arena{
		{Addr: 0x7ffff7e19c60, Main: true, SystemMem: 0x33000, MaxSystemMem: 0x40000, Attached: 1,
			Heaps: []heapwalk.Segment{mainChunks.seg()}},
		{Addr: hp + 0x30, SystemMem: 0x1d000, MaxSystemMem: 0x1d000, Attached: 2,
			Heaps: []heapwalk.Segment{{Start: hp, End: hp + 0x1d000}}},
	}
	return arenas, all
}

func TestCompute(t *testing.T) {
	arenas, chunks := testHeap()
	st := compute(arenas, chunks, func(i int) uint64 { return chunks.Size(i) + 0x10 })
	m := &st.Arenas[0]
	want := Free{Tcache: Count{1, 0x30}, Fastbins: Count{1, 0x20}, Unsorted: Count{1, 0x800},
		Smallbins: Count{1, 0x110}, Largebins: Count{1, 0x5000}, Top: Count{1, 0x2d2d0}}
	want.Count = Count{6, 0x30 + 0x20 + 0x800 + 0x110 + 0x5000 + 0x2d2d0}
	if m.Free != want {
		t.Errorf("main free:\n got %+v\nwant %+v", m.Free, want)
	}
	if m.InUse != (Count{5, 0x30 + 0x40 + 0x40 + 0x40 + 0x50}) || m.Overhead != (Count{1, 0x290}) {
		t.Errorf("main in use %+v, overhead %+v", m.InUse, m.Overhead)
	}
	if m.InUse.Bytes+m.Free.Bytes+m.Overhead.Bytes != m.SystemMem {
		t.Errorf("main: in use + free + overhead != system_mem")
	}
	if m.LargestFree != 0x2d2d0 || m.Fragmentation != 1-float64(0x2d2d0)/float64(want.Bytes) {
		t.Errorf("main largest %#x fragmentation %v", m.LargestFree, m.Fragmentation)
	}
	if m.Trimmable != freePages(0x555555559000+0x290+0x30+0x30+0x20+0x40+0x110+0x40, 0x5000)+topTrim(0x2d2d0) ||
		m.TrimmableTop != topTrim(0x2d2d0) {
		t.Errorf("main trimmable %#x (top %#x)", m.Trimmable, m.TrimmableTop)
	}
	th := &st.Arenas[1]
	// Overhead: the tcache struct, the fencepost, heap_info + malloc_state
	// (0x8d0) and the 0x10 after the fencepost.
	if th.Overhead != (Count{2, 0x290 + 0x10 + 0x8d0 + 0x10}) || th.Threads != 2 || th.Address != 0x7ffff0000030 {
		t.Errorf("thread arena %+v", th)
	}
	if th.InUse.Bytes+th.Free.Bytes+th.Overhead.Bytes != th.SystemMem {
		t.Errorf("thread arena: in use + free + overhead != system_mem")
	}
	if th.TrimmableTop != 0 {
		t.Errorf("thread arena top trimmed: %#x", th.TrimmableTop)
	}
	if st.Mmapped != (Count{2, 0x21000 + 0x40010}) {
		t.Errorf("mmapped %+v", st.Mmapped)
	}
	tot := &st.Total
	if tot.Arenas != 2 || tot.Threads != 3 || tot.SystemMem != 0x33000+0x1d000 || tot.MaxSystemMem != 0x40000+0x1d000 ||
		tot.InUse.Bytes != m.InUse.Bytes+th.InUse.Bytes || tot.Free.Fastbins != (Count{2, 0x40}) ||
		tot.LargestFree != m.LargestFree || tot.Trimmable != m.Trimmable+th.Trimmable {
		t.Errorf("total %+v", tot)
	}
	if len(st.Warnings) != 0 {
		t.Errorf("warnings %q", st.Warnings)
	}

	// A walk that found more than system_mem is reported, not hidden.
	arenas[0].SystemMem = 0x1000
	if st := compute(arenas, chunks, func(int) uint64 { return 0 }); len(st.Warnings) != 1 {
		t.Errorf("warnings %q", st.Warnings)
	}
}

func TestJSONFieldNames(t *testing.T) {
	arenas, chunks := testHeap()
	st := compute(arenas, chunks, func(i int) uint64 { return chunks.Size(i) })
	var buf bytes.Buffer
	if err := WriteJSON(&buf, st); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["version"] != 1.0 {
		t.Errorf("version %v", doc["version"])
	}
	a := doc["arenas"].([]any)[0].(map[string]any)
	for _, k := range []string{"address", "main", "system_mem", "threads", "in_use", "free", "largest_free", "fragmentation", "trimmable"} {
		if _, ok := a[k]; !ok {
			t.Errorf("arena has no %q: %v", k, a)
		}
	}
	if a["address"] != "0x7ffff7e19c60" || a["main"] != true {
		t.Errorf("address %v main %v", a["address"], a["main"])
	}
	free := a["free"].(map[string]any)
	for _, k := range []string{"chunks", "bytes", "tcache", "fastbins", "unsorted", "smallbins", "largebins", "top"} {
		if _, ok := free[k]; !ok {
			t.Errorf("free has no %q", k)
		}
	}
	for _, k := range []string{"mmapped", "total"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q", k)
		}
	}
	if _, ok := doc["total"].(map[string]any)["trimmable"]; !ok {
		t.Error("total has no trimmable")
	}
	var back Stats
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || back.Arenas[1].Address != st.Arenas[1].Address || back.Total != st.Total {
		t.Errorf("round trip: %v %+v", err, back.Total)
	}
	var h Hex
	if err := h.UnmarshalText([]byte("zz")); err == nil {
		t.Error("bad address accepted")
	}
}

func TestSizes(t *testing.T) {
	_, chunks := testHeap()
	chunks = chunks.add(lay(0x600000, spec(0x40, inUse), spec(0x40, inUse), spec(0x40, tcache), spec(0x80, inUse)))
	s := sizeHistograms(chunks)
	in := s.InUse
	if in.Chunks != 5+2+2+3 || in.Sizes != 7 || in.Buckets[0].Size != 0x40000 || in.Buckets[1].Size != 0x20ff0 {
		t.Errorf("in use %+v", in)
	}
	var last Bucket
	for i, b := range in.Buckets {
		if i > 0 && (b.Bytes > last.Bytes || (b.Bytes == last.Bytes && b.Size > last.Size)) {
			t.Errorf("order: %+v after %+v", b, last)
		}
		last = b
	}
	if b := bucket(in, 0x40); b == nil || b.Chunks != 5 || b.Bytes != 0x140 {
		t.Errorf("0x40 bucket %+v", b)
	}
	if s.Free.Chunks != 5+2+1 || bucket(s.Free, 0x2d2d0) != nil {
		t.Errorf("free %+v (top must not count)", s.Free)
	}
	s.Truncate(2)
	if len(s.InUse.Buckets) != 2 || s.InUse.Sizes != 7 || len(s.Free.Buckets) != 2 {
		t.Errorf("truncated %+v", s)
	}
	var buf bytes.Buffer
	if err := WriteSizesText(&buf, &Target{PID: 7, Glibc: "2.36"}, s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "the 2 biggest shown") || !strings.Contains(buf.String(), "262,144") {
		t.Errorf("text:\n%s", buf.String())
	}
}

func bucket(h Histogram, size uint64) *Bucket {
	for i := range h.Buckets {
		if h.Buckets[i].Size == size {
			return &h.Buckets[i]
		}
	}
	return nil
}

func TestWriteText(t *testing.T) {
	arenas, chunks := testHeap()
	st := compute(arenas, chunks, func(i int) uint64 { return chunks.Size(i) })
	st.Target = Target{Core: "/tmp/core.1", Executable: "/bin/x", Glibc: "2.36", Threads: 3}
	var buf bytes.Buffer
	if err := WriteText(&buf, st); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"core /tmp/core.1 (/bin/x), glibc 2.36, 3 thread(s), 2 arena(s)",
		"main arena 0x7ffff7e19c60: 1 thread attached, [heap]", "thread arena 0x7ffff0000030: 2 threads attached, 1 heap",
		"large bins", "fragmentation", "mmapped chunks: 2", "total: 2 arenas, 3 threads attached"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "unbinned") {
		t.Errorf("an empty unbinned row:\n%s", out)
	}
}

func TestSVG(t *testing.T) {
	arenas, chunks := testHeap()
	st := compute(arenas, chunks, func(i int) uint64 { return chunks.Size(i) })
	verdicts := make([]scan.Verdict, len(chunks))
	for i := range chunks {
		if chunks[i].st == inUse {
			verdicts[i] = scan.Reachable
		} else {
			verdicts[i] = scan.NotUser
		}
	}
	verdicts[1] = scan.Definite // the first 0x30 chunk in use
	verdicts[4] = scan.Possible
	var buf bytes.Buffer
	if err := writeSVG(&buf, st, arenas, chunks, verdicts); err != nil {
		t.Fatal(err)
	}
	type rect struct {
		X, Y, Width int
		Fill        string
	}
	var rects []rect
	dec := xml.NewDecoder(&buf)
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("not XML: %v", err)
		}
		se, ok := tok.(xml.StartElement)
		if !ok || se.Name.Local != "rect" {
			continue
		}
		var r rect
		for _, a := range se.Attr {
			switch a.Name.Local {
			case "x":
				r.X, _ = strconv.Atoi(a.Value)
			case "y":
				r.Y, _ = strconv.Atoi(a.Value)
			case "width":
				r.Width, _ = strconv.Atoi(a.Value)
			case "fill":
				r.Fill = a.Value
			}
		}
		rects = append(rects, r)
	}
	colors := map[string]int{}
	rows := map[int]int{}
	for _, r := range rects {
		colors[r.Fill] += r.Width
		if r.X >= svgLeft {
			rows[r.Y] += r.Width
			if r.X+r.Width > svgLeft+svgCols {
				t.Errorf("rect %+v goes past the row", r)
			}
		}
	}
	for y, w := range rows {
		if w > svgCols {
			t.Errorf("row %d is %d pixels wide", y, w)
		}
	}
	// 16 bytes per pixel: the leaked 0x30 chunk is 3 pixels, the 0x5000
	// large-bin chunk 1280.
	if colors[paints[paintLeaked].color] < 3+12 || colors[paints[paintLarge].color] < 1280 || colors[paints[paintPossible].color] < 4 {
		t.Errorf("colors %v", colors)
	}
	if colors[paints[paintTop].color] < (0x2d2d0)/16 {
		t.Errorf("top: %d pixels", colors[paints[paintTop].color])
	}
}

// fakeSpace is an address space for Summarize.
type fakeSpace struct {
	maps    []addrspace.Mapping
	threads []addrspace.Thread
	mem     map[addrspace.Addr][]byte
}

func (f *fakeSpace) Info() addrspace.Info              { return addrspace.Info{PID: 42, Executable: "/bin/prog"} }
func (f *fakeSpace) Mappings() []addrspace.Mapping     { return f.maps }
func (f *fakeSpace) Threads() []addrspace.Thread       { return f.threads }
func (f *fakeSpace) OpenFile(string) (*os.File, error) { return nil, os.ErrNotExist }
func (f *fakeSpace) Warnings() []string                { return nil }
func (f *fakeSpace) ReadAt(p []byte, a addrspace.Addr) (int, error) {
	for start, b := range f.mem {
		if a >= start && a+addrspace.Addr(len(p)) <= start+addrspace.Addr(len(b)) {
			return copy(p, b[a-start:]), nil
		}
	}
	return 0, addrspace.ErrUnreadable
}

// fakeResidency makes every mapping half resident.
type fakeResidency struct{}

func (fakeResidency) Mapping(m *addrspace.Mapping) (uint64, uint64, bool) {
	return m.Size() / 2, 0, true
}
func (fakeResidency) Range(s, e addrspace.Addr) (uint64, uint64, bool) {
	return uint64(e-s) / 2, 4096, true
}

func TestSummarize(t *testing.T) {
	rw, r, rx, none := addrspace.Read|addrspace.Write, addrspace.Read, addrspace.Read|addrspace.Exec, addrspace.Perm(0)
	shared := rw | addrspace.Shared
	m := func(start, end uint64, p addrspace.Perm, off uint64, path string) addrspace.Mapping {
		return addrspace.Mapping{Start: addrspace.Addr(start), End: addrspace.Addr(end), Perm: p, Offset: off, Path: path}
	}
	maps := []addrspace.Mapping{
		m(0x400000, 0x401000, r, 0, "/bin/prog"),
		m(0x401000, 0x402000, rx, 0x1000, "/bin/prog"),
		m(0x402000, 0x403000, rw, 0x2000, "/bin/prog"),
		m(0x403000, 0x405000, rw, 0, ""), // bss
		m(0x1000000, 0x1021000, rw, 0, "[heap]"),
		m(0x7f0000000000, 0x7f0000021000, rw, 0, ""),   // thread heap
		m(0x7f0000021000, 0x7f0004000000, none, 0, ""), // its reservation
		m(0x7f0010000000, 0x7f0010001000, none, 0, ""), // guard
		m(0x7f0010001000, 0x7f0010801000, rw, 0, ""),   // a thread's stack
		m(0x7f0010801000, 0x7f0010802000, none, 0, ""), // guard
		m(0x7f0010802000, 0x7f0011002000, rw, 0, ""),   // a cached stack
		m(0x7f0011002000, 0x7f0011064000, rw, 0, ""),   // two mmapped chunks and other memory
		m(0x7f0012000000, 0x7f0012001000, shared, 0, "/SYSV00000000"),
		m(0x7f0012001000, 0x7f0012002000, shared, 0, "/memfd:x (deleted)"),
		m(0x7f0012002000, 0x7f0012003000, shared, 0, "/dev/shm/y"),
		m(0x7f0012003000, 0x7f0012004000, shared, 0, "/dev/zero"),
		m(0x7f0012004000, 0x7f0012005000, r, 0, "/data/file"),
		m(0x7f0012005000, 0x7f0012006000, shared, 0, "/data/shared"),
		m(0x7f0013000000, 0x7f0013001000, r, 0, "/lib/libc.so.6"),
		m(0x7f0013001000, 0x7f0013002000, rx, 0x1000, "/lib/libc.so.6"),
		m(0x7f0014000000, 0x7f0014002000, rx, 0, ""), // a core's vdso
		m(0x7ffffffde000, 0x7ffffffff000, rw, 0, "[stack]"),
		m(0xffffffffff600000, 0xffffffffff601000, addrspace.Exec, 0, "[vsyscall]"),
	}
	elf := []byte("\x7fELF")
	s := &fakeSpace{maps: maps,
		threads: []addrspace.Thread{{TID: 1, Regs: addrspace.Regs{Rsp: 0x7ffffffee000}}, {TID: 2, Regs: addrspace.Regs{Rsp: 0x7f0010800000}}},
		mem: map[addrspace.Addr][]byte{0x400000: elf, 0x7f0013000000: elf, 0x7f0014000000: elf, 0x7f0012004000: []byte("data"),
			// mmapped chunk headers: prev_size 0 at the mapping start
			0x7f0011002000: make([]byte, 16), 0x7f0011023000: make([]byte, 16)},
	}
	h := &heapwalk.Heap{Glibc: "2.36", Layout: heapwalk.Layout{HeapMaxSize: 64 << 20},
		Arenas: []heapwalk.Arena{
			{Main: true, Heaps: []heapwalk.Segment{{Start: 0x1000000, End: 0x1021000}}},
			{Heaps: []heapwalk.Segment{{Start: 0x7f0000000000, End: 0x7f0000021000}}},
		}}
	as := summarize(s, h, fakeChunks{{addr: 0x7f0011002000, size: 0x21000, mmapped: true}, {addr: 0x7f0011023000, size: 0x21000, mmapped: true}}, fakeResidency{})
	want := map[string]Usage{
		ClassMainHeap:       {Mappings: 1, Virtual: 0x21000},
		ClassArenaCommitted: {Mappings: 1, Virtual: 0x21000},
		ClassArenaReserved:  {Mappings: 1, Virtual: 64<<20 - 0x21000},
		ClassMmapped:        {Mappings: 1, Virtual: 0x42000},
		ClassStacks:         {Mappings: 3, Virtual: 2*0x800000 + 0x21000},
		ClassGuards:         {Mappings: 2, Virtual: 0x2000},
		ClassImages:         {Mappings: 4, Virtual: 0x4000},
		ClassData:           {Mappings: 2, Virtual: 0x3000},
		ClassShared:         {Mappings: 4, Virtual: 0x4000},
		ClassFiles:          {Mappings: 2, Virtual: 0x2000},
		ClassKernel:         {Mappings: 2, Virtual: 0x3000},
		ClassAnon:           {Mappings: 1, Virtual: 0x20000},
	}
	var total uint64
	for _, c := range as.Classes {
		w, ok := want[c.Class]
		if !ok || c.Mappings != w.Mappings || c.Virtual != w.Virtual {
			t.Errorf("%s: %d mappings, %#x bytes; want %+v", c.Class, c.Mappings, c.Virtual, w)
		}
		delete(want, c.Class)
		total += *c.Resident
	}
	for c := range want {
		t.Errorf("no class %s", c)
	}
	if as.Mappings != len(maps) || *as.Resident != total {
		t.Errorf("total %+v", as.Usage)
	}
	// The mmapped chunks share a mapping with other memory: pagemap.
	if c := classByName(as, ClassMmapped); *c.Swapped != 4096 {
		t.Errorf("mmapped residency %+v", c)
	}
	for class, items := range map[string][]string{
		ClassShared: {ShmSysV, ShmMemfd, ShmPOSIX, ShmAnonymous},
		ClassStacks: {StackLive, StackCached},
		ClassImages: {"/bin/prog", "/lib/libc.so.6"},
		ClassFiles:  {"/data/file", "/data/shared"},
	} {
		c := classByName(as, class)
		if c == nil || len(c.Items) != len(items) {
			t.Errorf("%s items: %+v", class, c)
			continue
		}
		for i, it := range items {
			if c.Items[i].Name != it {
				t.Errorf("%s item %d: %q, want %q", class, i, c.Items[i].Name, it)
			}
		}
	}
	var buf bytes.Buffer
	if err := WriteMapsText(&buf, as); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "resident") || !strings.Contains(buf.String(), "    SysV shm") {
		t.Errorf("text:\n%s", buf.String())
	}

	// A core: no residency; no heap walk: heaps are anonymous memory.
	as = Summarize(s, nil, nil)
	if as.Resident != nil || classByName(as, ClassMainHeap).Virtual != 0x21000 || classByName(as, ClassMmapped) != nil {
		t.Errorf("without a heap walk: %+v", as)
	}
}

func classByName(as *AddressSpace, name string) *Class {
	for i := range as.Classes {
		if as.Classes[i].Class == name {
			return &as.Classes[i]
		}
	}
	return nil
}

func TestParseSmaps(t *testing.T) {
	const text = `55fef8e88000-55fef8e8a000 r--p 00000000 fe:00 10027313                   /tmp/sp/stats_peak
Size:                  8 kB
KernelPageSize:        4 kB
Rss:                   8 kB
Swap:                  0 kB
VmFlags: rd mr mw me dw sd
7ffe598fb000-7ffe5993f000 rw-p 00000000 00:00 0                          [stack]
Size:                272 kB
Rss:                  20 kB
Swap:                 12 kB
THPeligible:    0
`
	vmas, err := ParseSmaps(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if len(vmas) != 2 || vmas[0x55fef8e88000] != (VMAUsage{End: 0x55fef8e8a000, Rss: 8 << 10}) ||
		vmas[0x7ffe598fb000] != (VMAUsage{End: 0x7ffe5993f000, Rss: 20 << 10, Swap: 12 << 10}) {
		t.Errorf("%+v", vmas)
	}
	if _, err := ParseSmaps(strings.NewReader("garbage\n")); err == nil {
		t.Error("garbage accepted")
	}
	p := &Proc{vmas: vmas}
	if rss, swap, ok := p.Mapping(&addrspace.Mapping{Start: 0x7ffe598fb000, End: 0x7ffe5993f000}); !ok || rss != 20<<10 || swap != 12<<10 {
		t.Errorf("Mapping: %d %d %v", rss, swap, ok)
	}
	if _, _, ok := p.Mapping(&addrspace.Mapping{Start: 0x7ffe598fb000, End: 0x7ffe59940000}); ok {
		t.Error("a mapping whose end changed matched")
	}
	if _, _, ok := p.Range(0x1000, 0x2000); ok {
		t.Error("Range without pagemap")
	}
}

func TestOpenProcSelf(t *testing.T) {
	p, err := OpenProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = 1
	}
	var found bool
	for start, u := range p.vmas {
		if u.Rss > 0 && u.End-start >= PageSize {
			found = true
		}
	}
	if !found {
		t.Error("no resident mapping in our own smaps")
	}
	fds, err := ReadFDs(os.Getpid())
	if err != nil || fds.Total < 3 {
		t.Errorf("fds %+v %v", fds, err)
	}
}

func TestFDKind(t *testing.T) {
	for _, c := range []struct {
		target string
		dir    bool
		want   string
	}{
		{"socket:[1234]", false, "socket"},
		{"pipe:[99]", false, "pipe"},
		{"anon_inode:[eventfd]", false, "eventfd"},
		{"anon_inode:[eventpoll]", false, "eventpoll"},
		{"anon_inode:inotify", false, "inotify"},
		{"/memfd:x (deleted)", false, "memfd"},
		{"/dev/shm/y", false, "POSIX shm"},
		{"/dev/null", false, "device"},
		{"/tmp", true, "directory"},
		{"/tmp/f (deleted)", false, "deleted file"},
		{"/etc/passwd", false, "file"},
		{"net:[4026531840]", false, "other"},
	} {
		if got := FDKind(c.target, c.dir); got != c.want {
			t.Errorf("FDKind(%q) = %q, want %q", c.target, got, c.want)
		}
	}
}

func TestSVGScale(t *testing.T) {
	var arenas []heapwalk.Arena
	for i := 0; i < 1000; i++ {
		base := addrspace.Addr(0x7f0000000000 + uint64(i)<<26)
		arenas = append(arenas, heapwalk.Arena{Heaps: []heapwalk.Segment{{Start: base, End: base + 1<<20}}})
	}
	var buf bytes.Buffer
	if err := writeSVG(&buf, &Stats{}, arenas, fakeChunks{}, nil); err != nil || buf.Len() > 1<<20 {
		t.Errorf("%d bytes of SVG, %v", buf.Len(), err)
	}
	bpp := svgBytesPerPixel(arenas, fakeChunks{})
	rows := 1000 * int((1<<20+bpp*svgCols-1)/(bpp*svgCols))
	if rows > 2*1000 || bpp&(bpp-1) != 0 || bpp == 0 {
		t.Errorf("%d bytes per pixel: %d rows", bpp, rows)
	}
	if bpp := svgBytesPerPixel(arenas[:1], fakeChunks{}); bpp != svgMinBytes {
		t.Errorf("one small arena: %d bytes per pixel", bpp)
	}
}
