// Package words tests many words at once against a range of addresses:
// the inner loop of a conservative scan, which looks at every aligned
// word of the heap and keeps the few that could be pointers.
package words

// Mask sets bit j of out[k] when ws[64k+j]-lo < span (the word lies in
// [lo, lo+span)), and clears it otherwise. out must hold a word per 64
// words of ws, rounded up.
func Mask(ws []uint64, lo, span uint64, out []uint64) {
	full := len(ws) / 64
	if len(out) < (len(ws)+63)/64 {
		panic("words.Mask: out too short")
	}
	maskFull(ws[:64*full], lo, span, out[:full])
	if 64*full < len(ws) {
		out[full] = maskGo(ws[64*full:], lo, span)
	}
}

// maskGo returns the mask of up to 64 words, in plain Go, without a
// branch per word.
func maskGo(ws []uint64, lo, span uint64) uint64 {
	var m uint64
	for k, v := range ws {
		var b uint64
		if v-lo < span {
			b = 1
		}
		m |= b << uint(k)
	}
	return m
}

func maskFullGo(ws []uint64, lo, span uint64, out []uint64) {
	for k := range out {
		out[k] = maskGo(ws[64*k:64*k+64], lo, span)
	}
}
