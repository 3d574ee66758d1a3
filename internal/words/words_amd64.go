package words

import "golang.org/x/sys/cpu"

// maskAVX2 fills groups masks of 64 words each, 4 words per instruction.
//
//go:noescape
func maskAVX2(ws *uint64, out *uint64, groups int, lo, span uint64)

// maskFull masks whole groups of 64 words.
func maskFull(ws []uint64, lo, span uint64, out []uint64) {
	if len(out) == 0 {
		return
	}
	if cpu.X86.HasAVX2 {
		maskAVX2(&ws[0], &out[0], len(out), lo, span)
		return
	}
	maskFullGo(ws, lo, span, out)
}
