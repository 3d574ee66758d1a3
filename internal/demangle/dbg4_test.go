package demangle

import (
	"strings"
	"testing"
)

func BenchmarkDevDeepP(b *testing.B) {
	s := "_Z1f" + strings.Repeat("P", 15000) + "i"
	for i := 0; i < b.N; i++ {
		Symbol(s)
	}
}
func BenchmarkDevDeepP600(b *testing.B) {
	s := "_Z1f" + strings.Repeat("P", 600) + "i"
	for i := 0; i < b.N; i++ {
		Symbol(s)
	}
}
func BenchmarkDevVtable(b *testing.B) {
	for i := 0; i < b.N; i++ {
		TypeName("_ZTVNSt7__cxx1118basic_stringstreamIcSt11char_traitsIcESaIcEEE")
	}
}
