package bench

import (
	"testing"

	"github.com/heapsift/heapsift/bench/floor"
)

// BenchmarkFloor measures the least work that any conservative leak
// finder must do on the generator's heap, a share per CPU: read it once,
// then also follow its chunk headers, test every word, and look up each
// word that might be a pointer (see package floor). heapsift cannot be
// faster than the last level. ns/chunk is wall time per chunk.
//
//	HEAPSIFT_BENCH_SKEW=6 HEAPSIFT_BENCH_CHUNKS=20000000 go test -run '^$' -bench Floor ./bench
func BenchmarkFloor(b *testing.B) {
	eachChunkCount(b, func(b *testing.B, n int) {
		h, _ := attachBigheap(b, n)
		lo, hi := heapRange(b, h.pid)
		fh, err := floor.Load(h.pid, lo, hi)
		if err != nil {
			b.Fatal(err)
		}
		for _, level := range floor.Levels() {
			b.Run(level.String(), func(b *testing.B) {
				b.SetBytes(int64(fh.Bytes()))
				var found uint64
				for i := 0; i < b.N; i++ {
					if found, _, err = fh.Run(level); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fh.Chunks()), "ns/chunk")
				b.ReportMetric(float64(found)/float64(fh.Chunks()), "found/chunk")
			})
		}
	})
}
