package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/internal/testprog"
	"github.com/heapsift/heapsift/stats"
)

// The stats_peak fixture writes glibc's own numbers next to its truth
// file; its notes say where ("stats-files=PREFIX").
var statsFilesNote = regexp.MustCompile(`stats-files=(\S+)`)

// glibcStats is PREFIX.stats.json: mallinfo2() and, per arena, what the
// program itself holds there.
type glibcStats struct {
	Mallinfo2 struct {
		Arena, Ordblks, Smblks, Hblks, Hblkhd, Usmblks, Fsmblks, Uordblks, Fordblks, Keepcost uint64
	} `json:"mallinfo2"`
	Arenas []struct {
		Heap         string `json:"heap"`
		InUseChunks  uint64 `json:"in_use_chunks"`
		InUseBytes   uint64 `json:"in_use_bytes"`
		Threads      uint64 `json:"threads"`
		heapBaseAddr uint64
	} `json:"arenas"`
}

// trimReport is PREFIX.trim.json, written when the fixture has run
// malloc_trim(0) on SIGUSR1.
type trimReport struct {
	ArenaBefore    uint64 `json:"arena_before"`
	ArenaAfter     uint64 `json:"arena_after"`
	KeepcostBefore uint64 `json:"keepcost_before"`
	KeepcostAfter  uint64 `json:"keepcost_after"`
	ResidentBefore uint64 `json:"resident_before"`
	ResidentAfter  uint64 `json:"resident_after"`
}

// mallocInfo is malloc_info(0)'s XML.
type mallocInfo struct {
	Heaps []struct {
		Nr    int `xml:"nr,attr"`
		Sizes struct {
			Size     []xmlSize `xml:"size"`
			Unsorted *xmlSize  `xml:"unsorted"`
		} `xml:"sizes"`
		Total  []xmlTotal `xml:"total"`
		System []xmlTotal `xml:"system"`
		Aspace []xmlTotal `xml:"aspace"`
	} `xml:"heap"`
	Total []xmlTotal `xml:"total"`
}

type xmlSize struct {
	From  uint64 `xml:"from,attr"`
	To    uint64 `xml:"to,attr"`
	Total uint64 `xml:"total,attr"`
	Count uint64 `xml:"count,attr"`
}

type xmlTotal struct {
	Type  string `xml:"type,attr"`
	Count uint64 `xml:"count,attr"`
	Size  uint64 `xml:"size,attr"`
}

func find(ts []xmlTotal, typ string) xmlTotal {
	for _, t := range ts {
		if t.Type == typ {
			return t
		}
	}
	return xmlTotal{Type: typ + " (missing)"}
}

// startStatsPeak starts the stats_peak fixture and loads what glibc said.
func startStatsPeak(t *testing.T) (pid int, prefix string, g *glibcStats, mi *mallocInfo) {
	t.Helper()
	requirePtrace(t)
	bin := testprog.Build(t, "stats_peak")
	pid, truth := testprog.StartPaused(t, bin)
	m := statsFilesNote.FindStringSubmatch(truth.Notes)
	if m == nil {
		t.Fatalf("no stats-files in the notes: %q", truth.Notes)
	}
	prefix = m[1]
	g = &glibcStats{}
	readJSONFile(t, prefix+".stats.json", g)
	for i := range g.Arenas {
		a := &g.Arenas[i]
		v, err := strconv.ParseUint(a.Heap, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		a.heapBaseAddr = v
	}
	data, err := os.ReadFile(prefix + ".malloc_info.xml")
	if err != nil {
		t.Fatal(err)
	}
	mi = &mallocInfo{}
	if err := xml.Unmarshal(data, mi); err != nil {
		t.Fatalf("malloc_info: %v", err)
	}
	return pid, prefix, g, mi
}

func readJSONFile(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// runJSON runs heapsift in-process and decodes its JSON output.
func runJSON(t *testing.T, v any, args ...string) {
	t.Helper()
	e, out, errb := testEnv(t)
	if code := e.main(args); code != exitOK {
		t.Fatalf("heapsift %s: exit %d: %s", strings.Join(args, " "), code, errb)
	}
	if err := json.Unmarshal(out.Bytes(), v); err != nil {
		t.Fatalf("heapsift %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func eq[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s: heapsift says %v, glibc %v", what, got, want)
	}
}

// TestStatsMatchGlibc compares heapsift stats with mallinfo2() and
// malloc_info() taken by the program at the moment it parked, then has it
// malloc_trim(0) and checks that what it gave back is what heapsift called
// trimmable.
func TestStatsMatchGlibc(t *testing.T) {
	pid, prefix, g, mi := startStatsPeak(t)
	var st stats.Stats
	runJSON(t, &st, "stats", "--json", strconv.Itoa(pid))
	if len(st.Warnings) > 0 {
		t.Errorf("warnings: %q", st.Warnings)
	}

	// mallinfo2 (glibc 2.36 int_mallinfo): arena = Σ system_mem; ordblks =
	// the chunks in the bins plus one top per arena; smblks/fsmblks = the
	// fastbins; fordblks = top + fastbins + bins; uordblks = system_mem -
	// fordblks, so the tcache chunks count as in use; hblks/hblkhd =
	// mp_.n_mmaps/mmapped_mem; keepcost = the main arena's top.
	tot, fr := &st.Total, &st.Total.Free
	m := &g.Mallinfo2
	eq(t, "arena (Σ system_mem)", tot.SystemMem, m.Arena)
	eq(t, "ordblks (bins + tops)", fr.Unsorted.Chunks+fr.Smallbins.Chunks+fr.Largebins.Chunks+fr.Top.Chunks, m.Ordblks)
	eq(t, "smblks (fastbin chunks)", fr.Fastbins.Chunks, m.Smblks)
	eq(t, "fsmblks (fastbin bytes)", fr.Fastbins.Bytes, m.Fsmblks)
	eq(t, "fordblks (free - tcache)", fr.Bytes-fr.Tcache.Bytes, m.Fordblks)
	eq(t, "uordblks (in use + tcache + overhead)", tot.InUse.Bytes+fr.Tcache.Bytes+tot.Overhead.Bytes, m.Uordblks)
	eq(t, "hblks (mmapped chunks)", st.Mmapped.Chunks, m.Hblks)
	eq(t, "hblkhd (mmapped bytes)", st.Mmapped.Bytes, m.Hblkhd)
	if len(st.Arenas) == 0 || !st.Arenas[0].Main {
		t.Fatalf("the main arena is not first: %+v", st.Arenas)
	}
	eq(t, "keepcost (main top)", st.Arenas[0].Free.Top.Bytes, m.Keepcost)
	for name, c := range map[string]stats.Count{"tcache": fr.Tcache, "fastbins": fr.Fastbins,
		"unsorted": fr.Unsorted, "smallbins": fr.Smallbins, "largebins": fr.Largebins} {
		if c.Chunks == 0 {
			t.Errorf("the fixture left no %s chunk: it no longer covers every kind", name)
		}
	}
	eq(t, "unbinned chunks", fr.Unbinned.Chunks, 0)

	// malloc_info, arena by arena, in the same ring order.
	if len(mi.Heaps) != len(st.Arenas) {
		t.Fatalf("%d arenas, malloc_info lists %d", len(st.Arenas), len(mi.Heaps))
	}
	for i, h := range mi.Heaps {
		a := &st.Arenas[i]
		where := fmt.Sprintf("arena %d (%v)", i, a.Address)
		compareMallocInfoHeap(t, where, a, h.Sizes.Size, h.Sizes.Unsorted, h.Total, h.System, h.Aspace)
	}
	eq(t, "malloc_info mmap count", st.Mmapped.Chunks, find(mi.Total, "mmap").Count)
	eq(t, "malloc_info mmap size", st.Mmapped.Bytes, find(mi.Total, "mmap").Size)

	// What the program itself holds, and the threads attached.
	for _, own := range g.Arenas {
		a := arenaWithHeap(&st, own.heapBaseAddr)
		if a == nil {
			t.Errorf("no arena with heap %#x", own.heapBaseAddr)
			continue
		}
		where := fmt.Sprintf("arena %v", a.Address)
		eq(t, where+" in-use chunks", a.InUse.Chunks, own.InUseChunks)
		eq(t, where+" in-use bytes", a.InUse.Bytes, own.InUseBytes)
		eq(t, where+" threads", a.Threads, own.Threads)
	}

	// The peak: most of the main arena is free, and fragmented.
	main := &st.Arenas[0]
	if main.Free.Bytes < 4*main.InUse.Bytes || main.Fragmentation < 0.9 {
		t.Errorf("main arena after the peak: free %d, in use %d, fragmentation %.3f; want free > 4x in use, fragmentation > 0.9",
			main.Free.Bytes, main.InUse.Bytes, main.Fragmentation)
	}
	if main.Trimmable < main.Free.Bytes/4 {
		t.Errorf("main arena: trimmable %d of %d free", main.Trimmable, main.Free.Bytes)
	}

	// malloc_trim(0) gives back exactly what heapsift called trimmable:
	// the resident pages of [heap] and the arena heaps (all read first)
	// drop by Σ trimmable, and system_mem by the main arena's top part.
	tr := trimFixture(t, pid, prefix)
	eq(t, "mallinfo2 before malloc_trim", tr.ArenaBefore, m.Arena)
	eq(t, "resident bytes malloc_trim(0) released", tot.Trimmable, tr.ResidentBefore-tr.ResidentAfter)
	eq(t, "system_mem malloc_trim(0) released", tot.TrimmableTop, tr.ArenaBefore-tr.ArenaAfter)
	eq(t, "main arena trimmable top", main.TrimmableTop, tot.TrimmableTop)
	t.Logf("trimmable %d (top %d): malloc_trim(0) released %d resident bytes, system_mem %d -> %d",
		tot.Trimmable, tot.TrimmableTop, tr.ResidentBefore-tr.ResidentAfter, tr.ArenaBefore, tr.ArenaAfter)

	// After the trim: system_mem and top as glibc now says.
	var after stats.Stats
	runJSON(t, &after, "stats", "--json", strconv.Itoa(pid))
	eq(t, "system_mem after malloc_trim", after.Total.SystemMem, tr.ArenaAfter)
	eq(t, "main top after malloc_trim", after.Arenas[0].Free.Top.Bytes, tr.KeepcostAfter)
	eq(t, "trimmable top after malloc_trim", after.Total.TrimmableTop, 0)
	eq(t, "fastbins after malloc_trim", after.Total.Free.Fastbins.Chunks, 0)
}

// compareMallocInfoHeap checks one arena against its <heap> element.
// malloc_info prints the bins' sizes with chunksize_nomask, so every
// binned chunk adds its PREV_INUSE bit (1) to the totals; fastbin entries
// are "from size-15 to size".
func compareMallocInfoHeap(t *testing.T, where string, a *stats.Arena, sizes []xmlSize, unsorted *xmlSize, totals, system, aspace []xmlTotal) {
	t.Helper()
	f := &a.Free
	binned := f.Unsorted.Chunks + f.Smallbins.Chunks + f.Largebins.Chunks
	eq(t, where+" system current", a.SystemMem, find(system, "current").Size)
	eq(t, where+" system max", a.MaxSystemMem, find(system, "max").Size)
	eq(t, where+" fast count", f.Fastbins.Chunks, find(totals, "fast").Count)
	eq(t, where+" fast size", f.Fastbins.Bytes, find(totals, "fast").Size)
	eq(t, where+" rest count", binned+f.Top.Chunks, find(totals, "rest").Count)
	eq(t, where+" rest size", f.Unsorted.Bytes+f.Smallbins.Bytes+f.Largebins.Bytes+binned+f.Top.Bytes, find(totals, "rest").Size)
	var fast, small, large stats.Count
	for _, s := range sizes {
		switch {
		case s.To%16 == 0:
			fast.Chunks += s.Count
			fast.Bytes += s.Total
		case s.To < 1024:
			small.Chunks += s.Count
			small.Bytes += s.Total - s.Count
		default:
			large.Chunks += s.Count
			large.Bytes += s.Total - s.Count
		}
	}
	eq(t, where+" fastbins by size", f.Fastbins, fast)
	eq(t, where+" small bins", f.Smallbins, small)
	eq(t, where+" large bins", f.Largebins, large)
	var us stats.Count
	if unsorted != nil {
		us = stats.Count{Chunks: unsorted.Count, Bytes: unsorted.Total - unsorted.Count}
	}
	eq(t, where+" unsorted", f.Unsorted, us)
	if !a.Main {
		var heaps uint64
		for _, h := range a.Heaps {
			heaps += uint64(h.End - h.Start)
		}
		eq(t, where+" aspace total (Σ heap sizes)", heaps, find(aspace, "total").Size)
		eq(t, where+" subheaps", uint64(len(a.Heaps)), find(aspace, "subheaps").Size)
	}
}

func arenaWithHeap(st *stats.Stats, base uint64) *stats.Arena {
	for i := range st.Arenas {
		a := &st.Arenas[i]
		if base == 0 && a.Main {
			return a
		}
		if !a.Main && len(a.Heaps) > 0 && uint64(a.Heaps[0].Start) == base {
			return a
		}
	}
	return nil
}

// trimFixture has the parked fixture call malloc_trim(0) and returns what
// it measured.
func trimFixture(t *testing.T, pid int, prefix string) *trimReport {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	path := prefix + ".trim.json"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the fixture wrote no %s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var tr trimReport
	readJSONFile(t, path, &tr)
	return &tr
}

// TestStatsCoreMatchesLive checks that a core (gcore) gives the same
// statistics and histograms as the live process, with and without libc's
// debug symbols, and with no libc file at all.
func TestStatsCoreMatchesLive(t *testing.T) {
	gcore, err := exec.LookPath("gcore")
	if err != nil {
		t.Skip("gcore (from gdb) is not installed")
	}
	pid, _, _, _ := startStatsPeak(t)
	var live stats.Stats
	runJSON(t, &live, "stats", "--json", "--sizes", "--top", "0", strconv.Itoa(pid))
	var liveMaps stats.AddressSpace
	runJSON(t, &liveMaps, "maps", "--json", strconv.Itoa(pid))
	prefix := filepath.Join(t.TempDir(), "core")
	if out, err := exec.Command(gcore, "-o", prefix, strconv.Itoa(pid)).CombinedOutput(); err != nil {
		t.Fatalf("gcore: %v\n%s", err, out)
	}
	core := fmt.Sprintf("%s.%d", prefix, pid)
	for _, mode := range []struct {
		name string
		args []string
	}{
		{"symbols", nil},
		{"nosymbols", []string{"--no-debug-symbols"}},
		{"core-only", []string{"--sysroot", t.TempDir(), "--debug-file-directory", t.TempDir()}},
	} {
		var c stats.Stats
		runJSON(t, &c, append(append([]string{"stats", "--json", "--sizes", "--top", "0"}, mode.args...), core)...)
		if !reflect.DeepEqual(c.Arenas, live.Arenas) || c.Total != live.Total || c.Mmapped != live.Mmapped {
			t.Errorf("%s: core stats differ from live:\ncore %+v\nlive %+v", mode.name, c, live)
		}
		if !reflect.DeepEqual(c.Sizes, live.Sizes) {
			t.Errorf("%s: core histograms differ from live", mode.name)
		}
	}
	var coreMaps stats.AddressSpace
	runJSON(t, &coreMaps, "maps", "--json", core)
	for _, class := range []string{stats.ClassMainHeap, stats.ClassArenaCommitted, stats.ClassArenaReserved,
		stats.ClassMmapped, stats.ClassStacks, stats.ClassGuards, stats.ClassShared, stats.ClassFiles} {
		lc, cc := classOf(&liveMaps, class), classOf(&coreMaps, class)
		if lc == nil || cc == nil || lc.Virtual != cc.Virtual || lc.Mappings != cc.Mappings {
			t.Errorf("maps %s: live %+v, core %+v", class, lc, cc)
		}
	}
	if coreMaps.Resident != nil || coreMaps.FDs != nil {
		t.Errorf("a core has no resident sizes or descriptors: %+v %+v", coreMaps.Resident, coreMaps.FDs)
	}
}

func classOf(as *stats.AddressSpace, class string) *stats.Class {
	for i := range as.Classes {
		if as.Classes[i].Class == class {
			return &as.Classes[i]
		}
	}
	return nil
}

func itemOf(c *stats.Class, name string) *stats.Item {
	if c == nil {
		return nil
	}
	for i := range c.Items {
		if c.Items[i].Name == name {
			return &c.Items[i]
		}
	}
	return nil
}

// TestMapsLive checks the address-space summary of the live fixture
// against the kernel's own numbers (maps, smaps_rollup, fd) and against
// what the program mapped.
func TestMapsLive(t *testing.T) {
	pid, prefix, g, _ := startStatsPeak(t)
	var st stats.Stats
	runJSON(t, &st, "stats", "--json", strconv.Itoa(pid))
	var as stats.AddressSpace
	runJSON(t, &as, "maps", "--json", strconv.Itoa(pid))
	if len(as.Warnings) > 0 {
		t.Errorf("warnings: %q", as.Warnings)
	}

	proc := fmt.Sprintf("/proc/%d/", pid)
	mapsText, err := os.ReadFile(proc + "maps")
	if err != nil {
		t.Fatal(err)
	}
	var virtual uint64
	lines := strings.Split(strings.TrimSpace(string(mapsText)), "\n")
	for _, l := range lines {
		var lo, hi uint64
		if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err != nil {
			t.Fatal(err)
		}
		virtual += hi - lo
	}
	eq(t, "mappings", as.Mappings, len(lines))
	eq(t, "virtual", as.Virtual, virtual)
	rollup := smapsRollup(t, proc+"smaps_rollup")
	if as.Resident == nil || as.Swapped == nil {
		t.Fatal("no resident sizes for a live process")
	}
	eq(t, "resident (smaps_rollup Rss)", *as.Resident, rollup["Rss"])
	eq(t, "swapped (smaps_rollup Swap)", *as.Swapped, rollup["Swap"])
	var sum, sumRss uint64
	for _, c := range as.Classes {
		sum += c.Virtual
		sumRss += *c.Resident
	}
	eq(t, "Σ classes virtual", sum, as.Virtual)
	eq(t, "Σ classes resident", sumRss, *as.Resident)

	// Heaps and mmapped chunks, against glibc's numbers.
	var threadMem uint64
	for _, a := range st.Arenas[1:] {
		threadMem += a.SystemMem
	}
	committed, reserved := classOf(&as, stats.ClassArenaCommitted), classOf(&as, stats.ClassArenaReserved)
	if committed == nil || reserved == nil {
		t.Fatalf("no arena heap classes: %+v", as.Classes)
	}
	eq(t, "arena heaps committed (Σ thread arenas' system_mem)", committed.Virtual, threadMem)
	eq(t, "arena heaps committed + reserved", committed.Virtual+reserved.Virtual, uint64(len(st.Arenas)-1)<<26)
	eq(t, "mmapped chunks virtual (hblkhd)", classOf(&as, stats.ClassMmapped).Virtual, g.Mallinfo2.Hblkhd)
	eq(t, "main heap virtual (main system_mem)", classOf(&as, stats.ClassMainHeap).Virtual, st.Arenas[0].SystemMem)

	// Stacks: main + idle + 2 workers live, the exited thread's cached.
	stacks := classOf(&as, stats.ClassStacks)
	if it := itemOf(stacks, stats.StackLive); it == nil || it.Mappings != 4 {
		t.Errorf("live stacks: %+v", it)
	}
	if it := itemOf(stacks, stats.StackCached); it == nil || it.Mappings != 1 {
		t.Errorf("cached stacks: %+v", it)
	}
	if c := classOf(&as, stats.ClassGuards); c == nil || c.Mappings != 4 || c.Virtual != 4*4096 {
		t.Errorf("guard pages: %+v", c)
	}

	// One page of each kind of shared memory, and the data file.
	shared := classOf(&as, stats.ClassShared)
	for _, kind := range []string{stats.ShmSysV, stats.ShmPOSIX, stats.ShmMemfd, stats.ShmAnonymous} {
		if it := itemOf(shared, kind); it == nil || it.Mappings != 1 || it.Virtual != 4096 || *it.Resident != 4096 {
			t.Errorf("shared memory %s: %+v", kind, it)
		}
	}
	if it := itemOf(classOf(&as, stats.ClassFiles), prefix+".data"); it == nil || it.Virtual != 8192 {
		t.Errorf("data file mapping: %+v in %+v", it, classOf(&as, stats.ClassFiles))
	}
	for _, mod := range []string{"/stats_peak", "/libc.so.6"} {
		found := false
		for _, it := range classOf(&as, stats.ClassImages).Items {
			found = found || strings.HasSuffix(it.Name, mod)
		}
		if !found {
			t.Errorf("no module image %s", mod)
		}
	}

	// Descriptors: the program's pipe, socket pair, eventfd, memfd and
	// data file, and whatever the test harness gave it.
	ents, err := os.ReadDir(proc + "fd")
	if err != nil {
		t.Fatal(err)
	}
	if as.FDs == nil {
		t.Fatal("no descriptors for a live process")
	}
	eq(t, "open descriptors", as.FDs.Total, len(ents))
	for kind, n := range map[string]int{"socket": 2, "eventfd": 1, "memfd": 1} {
		eq(t, kind+" descriptors", as.FDs.Kinds[kind], n)
	}
	if as.FDs.Kinds["pipe"] < 2 || as.FDs.Kinds["file"] < 1 {
		t.Errorf("descriptors: %v", as.FDs.Kinds)
	}
}

func smapsRollup(t *testing.T, path string) map[string]uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]uint64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		fs := strings.Fields(v)
		if ok && len(fs) == 2 && fs[1] == "kB" {
			n, _ := strconv.ParseUint(fs[0], 10, 64)
			out[k] = n << 10
		}
	}
	return out
}

// TestStatsSizesAndPictures checks the histograms against the arena
// tables, the text outputs, and the heap map.
func TestStatsSizesAndPictures(t *testing.T) {
	pid, _, _, _ := startStatsPeak(t)
	svg := filepath.Join(t.TempDir(), "heap.svg")
	var st stats.Stats
	runJSON(t, &st, "stats", "--json", "--sizes", "--top", "0", "--svg", svg, strconv.Itoa(pid))
	s := st.Sizes
	if s == nil {
		t.Fatal("no sizes")
	}
	var mmappedChunkBytes uint64
	mmapSizes := map[uint64]bool{}
	for _, b := range s.InUse.Buckets {
		if b.Size >= 128<<10 {
			mmappedChunkBytes += b.Bytes
			mmapSizes[b.Size] = true
		}
	}
	eq(t, "in-use histogram chunks", s.InUse.Chunks, st.Total.InUse.Chunks+st.Mmapped.Chunks)
	eq(t, "in-use histogram bytes", s.InUse.Bytes-mmappedChunkBytes, st.Total.InUse.Bytes)
	eq(t, "free histogram chunks", s.Free.Chunks, st.Total.Free.Chunks-st.Total.Free.Top.Chunks)
	eq(t, "free histogram bytes", s.Free.Bytes, st.Total.Free.Bytes-st.Total.Free.Top.Bytes)
	for _, h := range []*stats.Histogram{&s.InUse, &s.Free} {
		eq(t, "buckets", len(h.Buckets), h.Sizes)
		var pct float64
		for i, b := range h.Buckets {
			pct += b.Percent
			if i > 0 && b.Bytes > h.Buckets[i-1].Bytes {
				t.Errorf("bucket %d (%d bytes) after one of %d bytes", i, b.Bytes, h.Buckets[i-1].Bytes)
			}
			if b.Bytes != b.Size*b.Chunks {
				t.Errorf("bucket %+v", b)
			}
		}
		if pct < 99.99 || pct > 100.01 {
			t.Errorf("percentages add up to %f", pct)
		}
	}

	e, out, errb := testEnv(t)
	if code := e.main([]string{"stats", "--sizes", "--top", "5", strconv.Itoa(pid)}); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if got := len(regexp.MustCompile(`(?m)[0-9]%$`).FindAllString(out.String(), -1)); got != 10 {
		t.Errorf("--top 5 shows %d rows:\n%s", got, out)
	}
	e, out, errb = testEnv(t)
	if code := e.main([]string{"stats", strconv.Itoa(pid)}); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	for _, want := range []string{"main arena 0x", "thread arena 0x", "fragmentation", "trimmable", "mmapped chunks: 3", "total: 4 arenas, 3 threads attached"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out)
		}
	}
	e, out, errb = testEnv(t)
	if code := e.main([]string{"maps", strconv.Itoa(pid)}); code != exitOK {
		t.Fatalf("maps: exit %d: %s", code, errb)
	}
	for _, want := range []string{stats.ClassMainHeap, stats.ClassArenaReserved, stats.ClassGuards, stats.ShmSysV, "open file descriptors:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("maps output lacks %q:\n%s", want, out)
		}
	}

	data, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(bytes.NewReader(data))
	colors := map[string]int{}
	texts := 0
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("the SVG is not well-formed XML: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			for _, a := range se.Attr {
				if se.Name.Local == "rect" && a.Name.Local == "fill" {
					colors[a.Value]++
				}
			}
			if se.Name.Local == "text" {
				texts++
			}
		}
	}
	for _, c := range []string{"#4e79a7", "#e15759", "#59a14f", "#b07aa1", "#d9d9d9"} { // in use, leaked, fastbins, large bins, top
		if colors[c] < 2 {
			t.Errorf("the heap map has %d rects of %s", colors[c], c)
		}
	}
	if n := bytes.Count(data, []byte("arena 0x")); n != len(st.Arenas) {
		t.Errorf("the heap map captions %d arenas, want %d", n, len(st.Arenas))
	}
}

func TestStatsUsage(t *testing.T) {
	for _, args := range [][]string{{"stats"}, {"maps"}, {"stats", "1", "2"}, {"stats", "--top", "-1", "1"}, {"maps", "/nonexistent"}} {
		e, _, _ := testEnv(t)
		if code := e.main(args); code != exitUsage {
			t.Errorf("%q: exit %d, want %d", args, code, exitUsage)
		}
	}
	e, _, errb := testEnv(t)
	if code := e.main([]string{"help", "stats"}); code != exitOK || !strings.Contains(errb.String(), "--sizes") {
		t.Errorf("help stats: exit %d, %s", code, errb)
	}
}
