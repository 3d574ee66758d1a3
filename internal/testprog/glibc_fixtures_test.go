package testprog

// The fixtures added for other glibc versions (see internal/glibctest).
// freelists adapts to the glibc it runs on; these are its counts on
// glibc 2.27-2.42 (the tcache holds 7 chunks per bin).
func init() {
	expected["freelists"] = counts{Definite: 30, Indirect: 1, Freed: 29}
}
