package demangle

import (
	"strings"
	"testing"
	"time"
)

func TestDevAdversarial(t *testing.T) {
	var b strings.Builder
	b.WriteString("_Z1f1A1BIS_S_E")
	// S_=A S0_=B S1_=B<A,A>
	for i := 1; i < 1700; i++ {
		b.WriteString("S0_IS" + seq(i+1) + "_S" + seq(i+1) + "_E")
	}
	for _, s := range []string{b.String(), "_Z1f" + strings.Repeat("P", 15000) + "i", "_Z1f" + strings.Repeat("N1a", 5000) + "E", "_Z1fIiE" + strings.Repeat("PS_", 5000)} {
		st := time.Now()
		out, ok := Symbol(s)
		t.Logf("len %d -> ok=%v outlen=%d in %v", len(s), ok, len(out), time.Since(st))
	}
}

func seq(i int) string {
	// S<seq>_ for index i (i>=1 means S<i-1>_ in base 36)
	n := i - 1
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	if n == 0 {
		return "0"
	}
	s := ""
	for n > 0 {
		s = string(digits[n%36]) + s
		n /= 36
	}
	return s
}
