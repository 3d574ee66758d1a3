package demangle

import (
	"strings"
	"testing"
)

// FuzzSymbol checks that no input makes the demangler fail internally
// (panic), produce unbounded output, behave nondeterministically, or
// disagree between TypeName and Symbol. The seed corpus is the symbol
// table of demangle_test.go plus testdata/fuzz/FuzzSymbol.
//
//	go test -fuzz=FuzzSymbol ./internal/demangle/
func FuzzSymbol(f *testing.F) {
	for _, tc := range symbolTests() {
		f.Add(tc.sym)
	}
	f.Fuzz(func(t *testing.T, sym string) {
		// Call the internals without the recovery of demangle, so that an
		// unexpected panic crashes with its stack trace.
		out, ok := demangleRaw(sym, false)
		if len(out) > maxOutput {
			t.Fatalf("output for %q is %d bytes, limit %d", sym, len(out), maxOutput)
		}
		if ok && out == "" {
			t.Fatalf("empty output for %q", sym)
		}
		if again, ok2 := demangleRaw(sym, false); again != out || ok2 != ok {
			t.Fatalf("%q demangled as %q, %v, then %q, %v", sym, out, ok, again, ok2)
		}
		name, tok := demangleRaw(sym, true)
		if !tok {
			return
		}
		if !ok || !strings.Contains(out, name) {
			t.Fatalf("TypeName(%q) = %q but Symbol gives %q, %v", sym, name, out, ok)
		}
		if got, ok := TypeName(sym); !strings.HasPrefix(sym, "_ZT") || !ok || got != name {
			t.Fatalf("TypeName(%q) = %q, %v; internal result %q", sym, got, ok, name)
		}
	})
}

// demangleRaw is demangle without its recovery from unexpected panics:
// only the parser's and printer's own failures are turned into ok=false.
func demangleRaw(sym string, typeOnly bool) (out string, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			if _, isFailure := r.(failure); !isFailure {
				panic(r)
			}
			out, ok = "", false
		}
	}()
	return demangleUnsafe(sym, typeOnly)
}
