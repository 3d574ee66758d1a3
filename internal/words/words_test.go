package words

import (
	"math/rand/v2"
	"testing"
)

// TestMaskAgrees compares Mask with the plain test of every word, for
// lengths around whole groups, on words near the range's edges, 0 and the
// top of the address space, and for ranges across 2^63.
func TestMaskAgrees(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	const lo, span = 0x555555554000, 1 << 30
	edges := []uint64{0, lo - 1, lo, lo + 1, lo + span - 1, lo + span, 1<<63 - 1, 1 << 63, 1<<64 - 1}
	for _, n := range []int{0, 1, 3, 4, 5, 63, 64, 65, 127, 128, 200, 4096} {
		for range 50 {
			ws := make([]uint64, n)
			for k := range ws {
				switch rng.IntN(3) {
				case 0:
					ws[k] = edges[rng.IntN(len(edges))]
				case 1:
					ws[k] = lo + rng.Uint64N(span)
				default:
					ws[k] = rng.Uint64()
				}
			}
			for _, r := range []struct{ lo, span uint64 }{{lo, span}, {0, 1 << 63}, {1<<63 - 8, 1 << 62}} {
				got := make([]uint64, (n+63)/64)
				for k := range got {
					got[k] = rng.Uint64() // every bit must be written
				}
				Mask(ws, r.lo, r.span, got)
				for k, v := range ws {
					if in := v-r.lo < r.span; got[k/64]>>(k%64)&1 == 1 != in {
						t.Fatalf("%d words, [%#x, +%#x): word %d (%#x): in range %v, mask says otherwise", n, r.lo, r.span, k, v, in)
					}
				}
				if n%64 != 0 && got[n/64]>>(n%64) != 0 {
					t.Fatalf("%d words: bits set past the last word: %#x", n, got[n/64])
				}
				// The plain Go code, for CPUs without AVX2.
				plain := make([]uint64, len(got))
				maskFullGo(ws[:64*(n/64)], r.lo, r.span, plain[:n/64])
				if n%64 != 0 {
					plain[n/64] = maskGo(ws[64*(n/64):], r.lo, r.span)
				}
				for k := range got {
					if plain[k] != got[k] {
						t.Fatalf("%d words, [%#x, +%#x): Go mask %#x, Mask %#x", n, r.lo, r.span, plain[k], got[k])
					}
				}
			}
		}
	}
}

// BenchmarkMask: a 256 KiB piece of heap, one pointer in 6 words, with
// Mask, with the plain Go mask, and with a branch per word.
func BenchmarkMask(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 2))
	const lo, span = 0x555555554000, 1 << 31
	ws := make([]uint64, 32768)
	for k := range ws {
		if rng.IntN(6) == 0 {
			ws[k] = lo + rng.Uint64N(span)
		} else {
			ws[k] = 0x5a5a5a5a5a5a5a5a
		}
	}
	out := make([]uint64, len(ws)/64)
	run := func(b *testing.B, fn func()) {
		b.SetBytes(int64(8 * len(ws)))
		for b.Loop() {
			fn()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(ws)), "ns/word")
	}
	b.Run("Mask", func(b *testing.B) { run(b, func() { Mask(ws, lo, span, out) }) })
	b.Run("go", func(b *testing.B) { run(b, func() { maskFullGo(ws, lo, span, out) }) })
	b.Run("branch", func(b *testing.B) {
		run(b, func() {
			var c uint64
			for _, v := range ws {
				if v-lo < span {
					c++
				}
			}
			out[0] = c
		})
	})
}
