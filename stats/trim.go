package stats

import "github.com/heapsift/heapsift/heapwalk"

// Constants of glibc's malloc_trim on x86-64 (malloc.c, mtrim and systrim).
const (
	minSize         = 32 // MINSIZE
	mallocChunkSize = 48 // sizeof(struct malloc_chunk)
)

// trimResult is what malloc_trim(0) would give back from one heap.
type trimResult struct {
	binned uint64 // whole pages inside free chunks (madvise MADV_DONTNEED)
	top    uint64 // the end of the main arena's top (sbrk with a negative size)
}

// trimmable simulates glibc 2.36's mtrim(av, 0) on the chunks [lo, hi) of
// one heap, which must be consecutive in memory:
//
//  1. malloc_consolidate merges every fastbin chunk with its free
//     neighbours (fastbin chunks and chunks in bins; never tcache chunks,
//     which look in use), and into top when it touches top. The merged
//     chunks go to the unsorted bin.
//  2. Every chunk in the unsorted bin and in the bins from
//     bin_index(pagesize) up gives back its whole pages past its
//     malloc_chunk header (smaller bins cannot hold a page).
//  3. For the main arena only (systrim): top gives back
//     ALIGN_DOWN(topsize - MINSIZE - 1, pagesize). Thread arenas' tops are
//     not trimmed by malloc_trim.
//
// Step 3 assumes that nothing else moved the program break (systrim checks
// that sbrk(0) is top's end).
func trimmable(c chunkList, lo, hi int, mainTop bool) trimResult {
	var r trimResult
	var run struct {
		start, size uint64
		fast        bool
		pages       uint64 // of the run's chunks taken one by one
		open        bool
	}
	flush := func() {
		if run.open {
			if run.fast {
				r.binned += freePages(run.start, run.size)
			} else {
				r.binned += run.pages
			}
		}
		run.open = false
	}
	for i := lo; i < hi; i++ {
		if c.Mmapped(i) {
			continue
		}
		a, size, st := uint64(c.Addr(i)), c.Size(i), c.State(i)
		switch st {
		case heapwalk.FreeFastbin, heapwalk.FreeUnsorted, heapwalk.FreeSmall, heapwalk.FreeLarge, heapwalk.FreeOther:
			if !run.open || run.start+run.size != a {
				flush()
				run.start, run.size, run.fast, run.pages, run.open = a, 0, false, 0, true
			}
			run.size += size
			run.fast = run.fast || st == heapwalk.FreeFastbin
			if st != heapwalk.FreeFastbin {
				run.pages += freePages(a, size)
			}
		case heapwalk.Top:
			if run.open && run.fast && run.start+run.size == a {
				size += run.size
				run.open = false
			}
			flush()
			if mainTop {
				r.top += topTrim(size)
			}
		default:
			flush()
		}
	}
	flush()
	return r
}

// freePages returns the bytes of whole pages that mtrim madvises away in a
// free chunk of size bytes at a.
func freePages(a, size uint64) uint64 {
	if size <= PageSize-1+mallocChunkSize {
		return 0
	}
	aligned := (a + mallocChunkSize + PageSize - 1) &^ (PageSize - 1)
	rest := a + size - aligned
	if rest <= PageSize-1 {
		return 0
	}
	return rest &^ (PageSize - 1)
}

// topTrim returns what systrim(0) releases from a top chunk of size bytes.
func topTrim(size uint64) uint64 {
	if size <= minSize+1 {
		return 0
	}
	return (size - minSize - 1) &^ (PageSize - 1)
}
