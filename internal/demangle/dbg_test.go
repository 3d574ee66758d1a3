package demangle

import (
	"os"
	"strings"
	"testing"
)

func TestDbg(t *testing.T) {
	for _, s := range strings.Fields(os.Getenv("SYMS")) {
		p := &parser{s: s, pos: 2}
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Logf("%s: parse failed at %d (%q) depth %d", s, p.pos, s[p.pos:], p.depth)
				}
			}()
			p.mangledName(true)
			t.Logf("parsed to %d of %d", p.pos, len(s))
		}()
		out, ok := Symbol(s)
		t.Logf("%s -> %q %v", s, out, ok)
	}
}
