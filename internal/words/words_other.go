//go:build !amd64

package words

func maskFull(ws []uint64, lo, span uint64, out []uint64) { maskFullGo(ws, lo, span, out) }
