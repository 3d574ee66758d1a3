package stats

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/heapsift/heapsift/internal/units"
	"html"
	"io"

	"github.com/heapsift/heapsift/addrspace"
	"github.com/heapsift/heapsift/heapwalk"
	"github.com/heapsift/heapsift/scan"
)

// What a byte of the heap map is.
type paint uint8

const (
	paintInUse paint = iota
	paintLeaked
	paintPossible
	paintTcache
	paintFastbin
	paintUnsorted
	paintSmall
	paintLarge
	paintTop
	paintUnbinned
	paintMeta
	numPaints
)

var paints = [numPaints]struct{ name, color string }{
	{"in use", "#4e79a7"},
	{"leaked", "#e15759"},
	{"possibly leaked", "#f28e2b"},
	{"tcache", "#8cd17d"},
	{"fastbins", "#59a14f"},
	{"unsorted", "#edc948"},
	{"small bins", "#76b7b2"},
	{"large bins", "#b07aa1"},
	{"top", "#d9d9d9"},
	{"free, unbinned", "#9c755f"},
	{"glibc metadata", "#555555"},
}

// Geometry of the heap map, in pixels.
const (
	svgCols    = 1024 // pixels per row
	svgMaxRows = 64   // rows of the biggest arena
	// svgMaxTotalRows bounds the rows of all arenas together.
	svgMaxTotalRows = 512
	svgRowH         = 10
	svgRowGap       = 2
	svgLeft         = 120 // room for the address labels
	svgRight        = 16
	svgMinBytes     = 16 // bytes per pixel at least: one pixel per 16-byte granule
)

// paintOf returns how chunk i is drawn.
func paintOf(c chunkList, i int, verdicts []scan.Verdict) paint {
	if i < len(verdicts) {
		switch verdicts[i] {
		case scan.Definite, scan.Indirect:
			return paintLeaked
		case scan.Possible:
			return paintPossible
		}
	}
	switch c.State(i) {
	case heapwalk.InUse:
		return paintInUse
	case heapwalk.FreeTcache:
		return paintTcache
	case heapwalk.FreeFastbin:
		return paintFastbin
	case heapwalk.FreeUnsorted:
		return paintUnsorted
	case heapwalk.FreeSmall:
		return paintSmall
	case heapwalk.FreeLarge:
		return paintLarge
	case heapwalk.Top:
		return paintTop
	case heapwalk.FreeOther:
		return paintUnbinned
	}
	return paintMeta
}

// svgWriter draws rows of pixels, merging runs of one paint into one
// rectangle.
type svgWriter struct {
	w      *bufio.Writer
	bpp    uint64 // bytes per pixel
	y      int    // top of the next row
	totals [numPaints]uint64
	// noLabels leaves out the address of each row.
	noLabels bool
}

func (s *svgWriter) p(format string, args ...any) { fmt.Fprintf(s.w, format, args...) }

// strip draws the bytes [start, end) of the address space, given as
// consecutive spans of one paint, as rows of svgCols pixels. Each pixel
// takes the paint of most of its bytes.
func (s *svgWriter) strip(start, end addrspace.Addr, spans func(yield func(a, b addrspace.Addr, p paint))) {
	if end <= start {
		return
	}
	rowBytes := s.bpp * svgCols
	rows := int((uint64(end-start) + rowBytes - 1) / rowBytes)
	for r := 0; r < rows && !s.noLabels; r++ {
		y := s.y + r*(svgRowH+svgRowGap)
		s.p(`<text x="%d" y="%d" class="a">%v</text>`+"\n", svgLeft-4, y+svgRowH-1, start+addrspace.Addr(uint64(r)*rowBytes))
	}
	var acc [numPaints]uint64
	pix := uint64(0) // the pixel being accumulated
	runStart, runPaint := uint64(0), paint(numPaints)
	emitRun := func(until uint64) {
		for runPaint < numPaints && runStart < until {
			row := runStart / svgCols
			stop := min(until, (row+1)*svgCols)
			x, y := svgLeft+int(runStart%svgCols), s.y+int(row)*(svgRowH+svgRowGap)
			s.p(`<rect x="%d" y="%d" width="%d" height="%d" fill="%s"/>`+"\n", x, y, stop-runStart, svgRowH, paints[runPaint].color)
			runStart = stop
		}
	}
	flushPixel := func() {
		best, bestN := paint(numPaints), uint64(0)
		for k, n := range acc {
			if n > bestN {
				best, bestN = paint(k), n
			}
		}
		acc = [numPaints]uint64{}
		if best != runPaint {
			emitRun(pix)
			runStart, runPaint = pix, best
		}
		pix++
	}
	at := start
	add := func(a, b addrspace.Addr, p paint) {
		s.totals[p] += uint64(b - a)
		for a < b {
			pixEnd := start + addrspace.Addr((pix+1)*s.bpp)
			if a == pixEnd-addrspace.Addr(s.bpp) && b >= pixEnd {
				// whole pixels of one paint
				n := uint64(b-a) / s.bpp
				if runPaint != p {
					emitRun(pix)
					runStart, runPaint = pix, p
				}
				pix += n
				a += addrspace.Addr(n * s.bpp)
				continue
			}
			stop := min(b, pixEnd)
			acc[p] += uint64(stop - a)
			a = stop
			if a == pixEnd {
				flushPixel()
			}
		}
	}
	spans(func(a, b addrspace.Addr, p paint) {
		a, b = max(a, at), min(b, end)
		if a >= b {
			return
		}
		if a > at {
			add(at, a, paintMeta)
		}
		add(a, b, p)
		at = b
	})
	if at < end {
		add(at, end, paintMeta)
	}
	if acc != ([numPaints]uint64{}) {
		flushPixel()
	}
	emitRun(pix)
	s.y += rows * (svgRowH + svgRowGap)
}

// WriteSVG draws the heap map: each arena's heaps as strips of rows, every
// chunk colored by its state (in use, leaked, possibly leaked, each free
// kind, top, glibc's metadata), then the mmapped chunks side by side.
// verdicts (from scan.Run, indexed like h.Chunks) may be nil: then nothing
// is drawn as leaked.
func WriteSVG(w io.Writer, st *Stats, h *heapwalk.Heap, verdicts []scan.Verdict) error {
	return writeSVG(w, st, h.Arenas, &h.Chunks, verdicts)
}

func writeSVG(w io.Writer, st *Stats, arenas []heapwalk.Arena, c chunkList, verdicts []scan.Verdict) error {
	// The body comes first, into a buffer, so that the header knows the
	// height and the legend the totals.
	var buf bytes.Buffer
	bpp := svgBytesPerPixel(arenas, c)
	const legendY = 46
	body := &svgWriter{w: bufio.NewWriter(&buf), bpp: bpp, y: legendY + 34}
	for i := range arenas {
		ar := &arenas[i]
		body.y += 14
		body.p(`<text x="8" y="%d">%s</text>`+"\n", body.y, html.EscapeString(arenaCaption(ar, arenaByAddr(st, ar.Addr))))
		body.y += 6
		for _, seg := range ar.Heaps {
			lo, hi := chunkRange(c, seg.Start, seg.End)
			body.strip(seg.Start, seg.End, func(yield func(a, b addrspace.Addr, p paint)) {
				for j := lo; j < hi; j++ {
					yield(c.Addr(j), c.Addr(j)+addrspace.Addr(c.Size(j)), paintOf(c, j, verdicts))
				}
			})
			body.y += 4
		}
	}
	body.mmapped(st, c, verdicts)
	if err := body.w.Flush(); err != nil {
		return fmt.Errorf("stats: drawing the heap map: %w", err)
	}

	bw := bufio.NewWriter(w)
	s := &svgWriter{w: bw}
	width, height := svgLeft+svgCols+svgRight, body.y+16
	s.p(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" shape-rendering="crispEdges">`+"\n",
		width, height, width, height)
	s.p(`<style>text{font-family:sans-serif;font-size:12px;fill:#222}.a{font-family:monospace;font-size:9px;text-anchor:end;fill:#555}.h{font-size:15px;font-weight:bold}</style>` + "\n")
	s.p(`<rect width="100%%" height="100%%" fill="white"/>` + "\n")
	s.p(`<text x="8" y="20" class="h">%s</text>`+"\n", html.EscapeString(svgTitle(&st.Target)))
	s.p(`<text x="8" y="38">%s per pixel, %d pixels per row; each pixel has the color of most of its bytes.</text>`+"\n",
		sizeText(bpp), svgCols)
	x, y := 8, legendY
	for k := paint(0); k < numPaints; k++ {
		if body.totals[k] == 0 && k != paintLeaked {
			continue
		}
		label := fmt.Sprintf("%s %s", paints[k].name, sizeText(body.totals[k]))
		if x+24+7*len(label) > width {
			x, y = 8, y+18
		}
		s.p(`<rect x="%d" y="%d" width="12" height="12" fill="%s" stroke="#888" stroke-width="0.5"/>`+"\n", x, y, paints[k].color)
		s.p(`<text x="%d" y="%d">%s</text>`+"\n", x+16, y+10, html.EscapeString(label))
		x += 24 + 7*len(label)
	}
	if _, err := bw.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("stats: writing the heap map: %w", err)
	}
	s.p("</svg>\n")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("stats: writing the heap map: %w", err)
	}
	return nil
}

// svgMaxMmapStrips is how many mmapped chunks get a strip each, at their
// own addresses; more are drawn one after the other in one strip.
const svgMaxMmapStrips = 32

// mmapped draws the mmapped chunks.
func (s *svgWriter) mmapped(st *Stats, c chunkList, verdicts []scan.Verdict) {
	total := mmappedBytes(c)
	if total == 0 {
		return
	}
	apart := st.Mmapped.Chunks <= svgMaxMmapStrips
	how := "each at its address"
	if !apart {
		how = "one after the other, not at their addresses"
	}
	s.y += 14
	s.p(`<text x="8" y="%d">%s</text>`+"\n", s.y, html.EscapeString(fmt.Sprintf(
		"mmapped chunks: %s, %s mapped (%s)", units.Count(st.Mmapped.Chunks), sizeText(st.Mmapped.Bytes), how)))
	s.y += 6
	if apart {
		for i := 0; i < c.Len(); i++ {
			if c.Mmapped(i) {
				a, b, p := c.Addr(i), c.Addr(i)+addrspace.Addr(c.Size(i)), paintOf(c, i, verdicts)
				s.strip(a, b, func(yield func(a, b addrspace.Addr, p paint)) { yield(a, b, p) })
				s.y += 4
			}
		}
		return
	}
	s.noLabels = true
	s.strip(0, addrspace.Addr(total), func(yield func(a, b addrspace.Addr, p paint)) {
		at := addrspace.Addr(0)
		for i := 0; i < c.Len(); i++ {
			if c.Mmapped(i) {
				n := addrspace.Addr(c.Size(i))
				yield(at, at+n, paintOf(c, i, verdicts))
				at += n
			}
		}
	})
	s.noLabels = false
}

// svgBytesPerPixel picks a power of two such that the biggest arena (or
// the mmapped chunks together) fits in svgMaxRows rows, and all of them
// in svgMaxTotalRows, which bounds the size of the picture.
func svgBytesPerPixel(arenas []heapwalk.Arena, c chunkList) uint64 {
	var biggest uint64
	var sizes []uint64
	for _, ar := range arenas {
		var n uint64
		for _, seg := range ar.Heaps {
			if seg.End > seg.Start {
				n += uint64(seg.End - seg.Start)
				sizes = append(sizes, uint64(seg.End-seg.Start))
			}
		}
		biggest = max(biggest, n)
	}
	mm := mmappedBytes(c)
	biggest = max(biggest, mm)
	sizes = append(sizes, mm)
	bpp := uint64(svgMinBytes)
	for bpp*svgCols*svgMaxRows < biggest {
		bpp *= 2
	}
	// Every strip takes a row at least, however small.
	for limit := max(svgMaxTotalRows, 2*len(sizes)); bpp < 1<<40; bpp *= 2 {
		rows := 0
		for _, n := range sizes {
			rows += int((n + bpp*svgCols - 1) / (bpp * svgCols))
		}
		if rows <= limit {
			break
		}
	}
	return bpp
}

func mmappedBytes(c chunkList) uint64 {
	var n uint64
	for i := 0; i < c.Len(); i++ {
		if c.Mmapped(i) {
			n += c.Size(i)
		}
	}
	return n
}

func svgTitle(t *Target) string {
	what := fmt.Sprintf("pid %d", t.PID)
	if t.Core != "" {
		what = "core " + t.Core
	}
	if t.Executable != "" {
		what += " (" + t.Executable + ")"
	}
	return "heapsift heap map: " + what
}

func arenaByAddr(st *Stats, a addrspace.Addr) *Arena {
	for i := range st.Arenas {
		if st.Arenas[i].Address == Hex(a) {
			return &st.Arenas[i]
		}
	}
	return nil
}

func arenaCaption(ar *heapwalk.Arena, a *Arena) string {
	kind := "thread arena"
	if ar.Main {
		kind = "main arena"
	}
	s := fmt.Sprintf("%s %v", kind, ar.Addr)
	if a != nil {
		s += fmt.Sprintf(": system_mem %s, in use %s, free %s (fragmentation %.0f%%), trimmable %s",
			sizeText(a.SystemMem), sizeText(a.InUse.Bytes), sizeText(a.Free.Bytes), 100*a.Fragmentation,
			sizeText(a.Trimmable))
	}
	return s
}
