// Package demangle decodes C++ symbol names mangled according to the
// Itanium C++ ABI (the scheme used by GCC and Clang on Linux and most
// other ELF platforms), producing exactly the text that c++filt from GNU
// binutils prints (checked against binutils 2.40).
//
// heapsift uses it to name the dynamic type of a leaked object from the
// vtable symbol its first word points into: TypeName("_ZTV6Widget")
// returns "Widget". Symbol demangles any symbol (functions, data, special
// names such as thunks and guard variables) for reports.
//
// The demangler was written from the ABI specification
// (https://itanium-cxx-abi.github.io/cxx-abi/abi.html#mangling). It
// covers nested, local and unscoped names, templates with type, literal,
// pack and expression arguments, substitutions and the standard
// abbreviations, all builtin and compound types (pointers, references,
// cv-qualifiers, functions with ref-qualifiers and exception
// specifications, arrays, pointers to members, vector types), operators
// and conversion operators, constructors and destructors, lambdas and
// unnamed types, ABI tags, structured bindings, special names, clone
// suffixes, and the expressions that appear in decltype and template
// arguments in practice.
//
// Input it does not understand is rejected rather than guessed at:
// whenever a function here reports ok, its result is what c++filt prints.
// (c++filt by default refuses names longer than 1024 bytes to bound its
// stack use; for those, the result is what "c++filt --no-recurse-limit"
// prints.)
// Not supported (ok is false): C++20 module names, some rarer
// expressions (fold expressions, noexcept, sizeof... of an alias pack,
// designated initializers, destructor names in unresolved names),
// reference temporaries (_ZGR), symbols not starting with _Z (such as
// _GLOBAL__sub_I_ names or other languages' manglings), symbols longer
// than 16 KiB, and a few malformed forms for which c++filt's output is an
// artifact of its implementation.
//
// All work is bounded: recursion depth, output length and the number of
// printing steps are limited, so any input returns quickly and never
// panics. The package has no global mutable state and is safe for
// concurrent use.
package demangle

import "strings"

// Limits. Real symbols stay far below them: in the test corpus of about
// 100,000 symbols the longest is 604 bytes and printing never takes more
// than 6 steps per input byte.
const (
	maxInput      = 1 << 14  // bytes of mangled input
	maxOutput     = 1 << 16  // bytes of demangled output
	maxParseDepth = 512      // nesting of grammar productions
	maxPrintDepth = 500      // nesting while printing; see printer.print
	maxSubs       = maxInput // substitution candidates
	baseSteps     = 1 << 11  // print steps allowed, plus stepsPerByte per input byte,
	stepsPerByte  = 16       // up to maxSteps in all
	maxSteps      = 1 << 17
)

// status is the outcome of an internal demangling attempt.
type status uint8

const (
	statusOK          status = iota
	statusUnsupported        // malformed, or a construct not implemented
	statusBug                // an unexpected runtime panic (tests assert it never happens)
)

// Symbol demangles a mangled C++ symbol ("_Z..."), returning the text
// c++filt prints for it, e.g. "ns::Gadget::run(int) const" or
// "vtable for ns::Gadget". ok is false if sym is not a mangled name, is
// malformed, or uses a construct this package does not support.
func Symbol(sym string) (string, bool) {
	out, st := demangle(sym, false)
	return out, st == statusOK
}

// TypeName returns the C++ type named by a vtable (_ZTV), typeinfo
// (_ZTI), typeinfo name (_ZTS) or VTT (_ZTT) symbol, or the derived
// class of a construction vtable (_ZTC), e.g. "Widget" for _ZTV6Widget
// and "std::bad_alloc" for _ZTVSt9bad_alloc. The spelling is c++filt's.
// ok is false for any other symbol. A trailing clone suffix such as
// ".lto_priv.0" is ignored; linker version suffixes ("@@GLIBCXX_3.4")
// must be removed by the caller.
func TypeName(sym string) (string, bool) {
	if len(sym) < 5 || !strings.HasPrefix(sym, "_ZT") || !strings.ContainsRune("VISTC", rune(sym[3])) {
		return "", false
	}
	out, st := demangle(sym, true)
	return out, st == statusOK
}

// demangle parses sym and prints either the whole symbol or, if
// typeOnly, the type named by a vtable-like special name. It never
// panics: an unexpected runtime error is reported as statusBug.
func demangle(sym string, typeOnly bool) (out string, st status) {
	defer func() {
		if r := recover(); r != nil {
			out = ""
			if _, ok := r.(failure); ok {
				st = statusUnsupported
			} else {
				st = statusBug
			}
		}
	}()
	out, ok := demangleUnsafe(sym, typeOnly)
	if !ok {
		return "", statusUnsupported
	}
	return out, statusOK
}

// demangleUnsafe does the work of demangle. It panics with failure{} on
// malformed or unsupported input.
func demangleUnsafe(sym string, typeOnly bool) (string, bool) {
	if len(sym) < 3 || len(sym) > maxInput || !strings.HasPrefix(sym, "_Z") {
		return "", false
	}
	p := &parser{s: sym, pos: 2}
	n := p.mangledName(true)
	if p.pos != len(sym) {
		return "", false
	}
	if typeOnly {
		if n = vtableType(n); n == nil {
			return "", false
		}
	}
	pr := &printer{maxSteps: min(baseSteps+stepsPerByte*len(sym), maxSteps)}
	pr.print(n)
	return string(pr.buf), true
}

// vtableType returns the type named by a vtable-like special name, or
// nil if n is not one.
func vtableType(n node) node {
	if c, ok := n.(*cloneName); ok {
		return vtableType(c.n)
	}
	switch n := n.(type) {
	case *specialName:
		switch n.prefix {
		case "vtable for ", "typeinfo for ", "typeinfo name for ", "VTT for ":
			return n.n
		}
	case *ctorVtable:
		return n.derived
	}
	return nil
}
