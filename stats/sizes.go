package stats

import (
	"sort"

	"github.com/heapsift/heapsift/heapwalk"
)

// Bucket is one chunk size of a histogram.
type Bucket struct {
	Size   uint64 `json:"size"` // chunk size, header included
	Chunks uint64 `json:"chunks"`
	Bytes  uint64 `json:"bytes"`
	// Percent is Bytes as a percentage of the histogram's bytes.
	Percent float64 `json:"percent"`
}

// Histogram counts chunks by size, biggest total first.
type Histogram struct {
	Count
	// Sizes is the number of distinct sizes; Buckets may hold fewer
	// (Truncate).
	Sizes   int      `json:"sizes"`
	Buckets []Bucket `json:"buckets"`
}

// Sizes are the chunk-size histograms of a heap, like WinDbg's
// !heap -stat: the chunks in use (mmapped ones included) and the free
// chunks (every kind but top).
type Sizes struct {
	InUse Histogram `json:"in_use"`
	Free  Histogram `json:"free"`
}

// SizeHistograms counts the chunks of a walked heap by size.
func SizeHistograms(h *heapwalk.Heap) *Sizes {
	return sizeHistograms(&h.Chunks)
}

func sizeHistograms(c chunkList) *Sizes {
	inUse, free := map[uint64]*Bucket{}, map[uint64]*Bucket{}
	for i := 0; i < c.Len(); i++ {
		var m map[uint64]*Bucket
		switch st := c.State(i); {
		case st == heapwalk.InUse:
			m = inUse
		case st.Free() && st != heapwalk.Top:
			m = free
		default:
			continue
		}
		size := c.Size(i)
		b := m[size]
		if b == nil {
			b = &Bucket{Size: size}
			m[size] = b
		}
		b.Chunks++
		b.Bytes += size
	}
	return &Sizes{InUse: histogram(inUse), Free: histogram(free)}
}

// histogram orders the buckets by bytes, then by size, both descending.
func histogram(m map[uint64]*Bucket) Histogram {
	h := Histogram{Sizes: len(m), Buckets: make([]Bucket, 0, len(m))}
	for _, b := range m {
		h.Buckets = append(h.Buckets, *b)
		h.Chunks += b.Chunks
		h.Bytes += b.Bytes
	}
	sort.Slice(h.Buckets, func(i, j int) bool {
		a, b := &h.Buckets[i], &h.Buckets[j]
		if a.Bytes != b.Bytes {
			return a.Bytes > b.Bytes
		}
		return a.Size > b.Size
	})
	for i := range h.Buckets {
		if h.Bytes > 0 {
			h.Buckets[i].Percent = 100 * float64(h.Buckets[i].Bytes) / float64(h.Bytes)
		}
	}
	return h
}

// Truncate keeps the n biggest buckets of each histogram (n <= 0 keeps
// them all).
func (s *Sizes) Truncate(n int) {
	for _, h := range []*Histogram{&s.InUse, &s.Free} {
		if n > 0 && len(h.Buckets) > n {
			h.Buckets = h.Buckets[:n]
		}
	}
}
