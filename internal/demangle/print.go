package demangle

import (
	"strconv"
	"strings"
)

// The printer reproduces the output format of c++filt (GNU binutils).
//
// C++ declarators are printed inside out: in "void (*)(int)" the pointer
// appears between the return type and the parameter list. While printing
// the inner part of a type, the printer keeps a stack of pending
// modifiers (pointers, references, cv-qualifiers, function and array
// types, and the name of the function being declared). A function or
// array type prints the pending modifiers at the right place and marks
// them printed; any modifier still unprinted when its inner type is done
// is appended as a suffix ("int const*").

// modRole classifies an entry of the modifier stack.
type modRole uint8

const (
	mkType   modRole = iota // *modType, *cvType, *ptrMemType, *vendorQual, *vectorType
	mkFunc                  // *funcType whose return type is being printed
	mkArray                 // *arrayType whose element type is being printed
	mkName                  // the name of the function being printed
	mkFnQual                // qualifiers printed after a parameter list
)

// pmod is one entry of the modifier stack.
type pmod struct {
	n       node
	kind    modRole
	quals   []fnQual // for mkFnQual
	printed bool
	next    *pmod
	tmpl    *tmplFrame // template arguments in scope where it was pushed
}

// tmplFrame is one level of template arguments in scope, used to print
// template parameters (T_) as the arguments they refer to.
type tmplFrame struct {
	args []node
	next *tmplFrame
}

type printer struct {
	buf   []byte
	lastc byte // last byte appended; not reset when a comma is dropped
	// c++filt prints through a 256-byte buffer, flushed when full. Whether
	// it can drop the ", " before an empty pack depends on whether a flush
	// happened meanwhile, so the buffer's fill level is tracked here.
	chunk     int // bytes in c++filt's buffer
	flushes   int // number of times it was flushed
	mods      *pmod
	tmpl      *tmplFrame
	curTmpl   *templateNode // innermost template being printed (for "operator T")
	packIndex int           // element of an argument pack being expanded
	lambdaArg int           // >0 while printing a lambda's parameters
	depth     int
	steps     int
	maxSteps  int

	// stack holds the nodes being printed, outermost first.
	stack []node
	// scopes records the template arguments in scope the first time a
	// template parameter was printed as the operand of a reference; when
	// that parameter is reached again through a substitution, it refers
	// to the same arguments (as in c++filt).
	scopes map[*templateParam]*tmplFrame
}

func (p *printer) fail() { panic(failure{}) }

func (p *printer) str(s string) {
	if len(p.buf)+len(s) > maxOutput {
		p.fail()
	}
	p.buf = append(p.buf, s...)
	if len(s) > 0 {
		p.lastc = s[len(s)-1]
		p.advance(len(s))
	}
}

// cxxfiltBuf is the size of c++filt's print buffer.
const cxxfiltBuf = 256

// advance accounts for n bytes appended to c++filt's buffer, which is
// flushed whenever a byte is appended to a buffer holding 255 bytes.
func (p *printer) advance(n int) {
	for n > 0 {
		if p.chunk == cxxfiltBuf-1 {
			p.chunk = 0
			p.flushes++
		}
		k := min(n, cxxfiltBuf-1-p.chunk)
		p.chunk += k
		n -= k
	}
}

func (p *printer) byte(c byte) {
	if len(p.buf)+1 > maxOutput {
		p.fail()
	}
	p.buf = append(p.buf, c)
	p.lastc = c
	p.advance(1)
}

func (p *printer) num(n int) { p.str(strconv.Itoa(n)) }

// last returns the last byte appended. Like c++filt, it still reports
// the space of a ", " that printList removed again, so "A<B<C>, >"
// with an empty pack prints as "A<B<C>>".
func (p *printer) last() byte { return p.lastc }

// tick charges one unit of work, bounding the total time spent printing
// (substitutions make the tree a DAG whose expansion can be exponential).
func (p *printer) tick() {
	p.steps++
	if p.steps > p.maxSteps {
		p.fail()
	}
}

func (p *printer) push(n node, kind modRole) *pmod {
	m := &pmod{n: n, kind: kind, next: p.mods, tmpl: p.tmpl}
	p.mods = m
	return m
}

// print prints any node.
//
// The nesting depth is limited to maxPrintDepth. c++filt gives up when
// its printer recurses more than 1024 levels deep, counting a level per
// list element and per cv-qualifier, where this printer iterates; those
// are counted here too, and as c++filt's printer uses at most about two
// levels for each of ours, the lower limit keeps us from printing what
// c++filt would reject.
func (p *printer) print(n node) {
	p.tick()
	p.depth++
	if p.depth > maxPrintDepth {
		p.fail()
	}
	b := n.leafOf()
	if b.printing > 1 {
		p.fail()
	}
	b.printing++
	p.stack = append(p.stack, n)
	p.printNode(n)
	p.stack = p.stack[:len(p.stack)-1]
	b.printing--
	p.depth--
}

func (p *printer) printNode(n node) {
	switch n := n.(type) {
	case *nameNode:
		p.str(n.s)
	case *builtinNode:
		p.str(n.s)
	case *qualName:
		p.print(n.scope)
		p.str("::")
		p.print(n.n)
	case *templateNode:
		p.printTemplate(n)
	case *taggedName:
		p.print(n.n)
		p.str("[abi:")
		p.str(n.tag)
		p.byte(']')
	case *operatorName:
		p.str("operator")
		name := n.op.name
		if isLower(name[0]) {
			p.byte(' ')
		}
		if name[len(name)-1] == ' ' {
			name = name[:len(name)-1]
		}
		p.str(name)
	case *conversionOp:
		if n.cast {
			p.fail()
		}
		p.str("operator ")
		p.printConversion(n)
	case *literalOp:
		p.str("operator\"\" ")
		p.str(n.suffix)
	case *vendorOp:
		p.str("operator ")
		p.str(n.name)
	case *ctorDtorName:
		if n.dtor {
			p.byte('~')
		}
		p.str(n.n)
	case *localName:
		// The enclosing function is printed on its own, without the
		// modifiers pending for the local entity.
		hold := p.mods
		p.mods = nil
		p.print(n.enc)
		p.mods = hold
		p.str("::")
		p.print(n.entity)
	case *defaultArg:
		p.str("{default arg#")
		p.num(n.num + 1)
		p.str("}::")
		p.print(n.n)
	case *lambdaName:
		p.str("{lambda(")
		p.lambdaArg++
		p.printList(n.params)
		p.lambdaArg--
		p.str(")#")
		p.num(n.num + 1)
		p.byte('}')
	case *unnamedType:
		p.str("{unnamed type#")
		p.num(n.num + 1)
		p.byte('}')
	case *bindingName:
		p.byte('[')
		for i, s := range n.names {
			if i > 0 {
				p.str(", ")
			}
			p.str(s)
		}
		p.byte(']')
	case *cvName:
		m := p.push(n, mkFnQual)
		m.quals = n.quals
		p.print(n.n)
		if !m.printed {
			p.printMod(m)
		}
		p.mods = m.next
	case *typedName:
		p.printTypedName(n)
	case *specialName:
		p.str(n.prefix)
		p.print(n.n)
	case *ctorVtable:
		p.str("construction vtable for ")
		p.print(n.base)
		p.str("-in-")
		p.print(n.derived)
	case *cloneName:
		p.print(n.n)
		p.str(" [clone ")
		p.str(n.suffix)
		p.byte(']')
	case *modType, *cvType, *ptrMemType, *vendorQual, *vectorType:
		p.printModifier(n)
	case *funcType:
		p.printFuncTypeNode(n)
	case *arrayType:
		p.printArrayNode(n)
	case *templateParam:
		p.printTemplateParam(n)
	case *packExpansion:
		p.printPackExpansion(n)
	case *argPack:
		p.printList(n.args)
	case *decltypeNode:
		p.str("decltype (")
		p.print(n.expr)
		p.byte(')')
	case *literal:
		p.printLiteral(n)
	case *funcParam:
		if n.idx == 0 {
			p.str("this")
		} else {
			p.str("{parm#")
			p.num(n.idx)
			p.byte('}')
		}
	case *exprList:
		p.printList(n.items)
	case *unaryExpr:
		p.printUnary(n)
	case *binaryExpr:
		p.printBinary(n)
	case *trinaryExpr:
		p.printSubexpr(n.a)
		p.printExprOp(n.op)
		p.printSubexpr(n.b)
		p.str(" : ")
		p.printSubexpr(n.c)
	case *nullaryExpr:
		p.printExprOp(n.op)
	case *newExpr:
		p.str("new ") // also for new[]
		if len(n.placement.items) > 0 {
			p.printSubexpr(n.placement)
			p.byte(' ')
		}
		p.print(n.t)
		if n.init != nil {
			p.printSubexpr(n.init)
		}
	case *initList:
		if n.t != nil {
			p.print(n.t)
		}
		p.byte('{')
		p.printList(n.items)
		p.byte('}')
	default:
		p.fail()
	}
}

// printList prints a comma-separated list. As in c++filt, when the
// elements from some position on print nothing at all (empty packs),
// the separator before them is dropped; an empty element followed by a
// non-empty one keeps both separators ("a, , b"). c++filt cannot drop a
// separator once its buffer was flushed after it, and neither do we.
func (p *printer) printList(items []node) {
	if len(items) == 0 {
		return
	}
	p.print(items[0])
	if len(items) == 1 {
		return
	}
	type mark struct{ buf, chunk, flushes int }
	marks := make([]mark, len(items))
	// c++filt prints lists recursively, one level per element; count
	// them so that its recursion limit is never exceeded (see print).
	hold := p.depth
	for i := 1; i < len(items); i++ {
		p.depth++
		if p.chunk >= cxxfiltBuf-2 {
			// c++filt flushes first so that ", " stays in one piece.
			p.chunk = 0
			p.flushes++
		}
		p.str(", ")
		marks[i] = mark{len(p.buf), p.chunk, p.flushes}
		p.print(items[i])
	}
	p.depth = hold
	for i := len(items) - 1; i >= 1; i-- {
		m := marks[i]
		if len(p.buf) != m.buf || p.chunk != m.chunk || p.flushes != m.flushes {
			break
		}
		p.buf = p.buf[:m.buf-2]
		p.chunk -= 2
	}
}

// printTemplate prints name<args>, avoiding "<<" and ">>".
func (p *printer) printTemplate(t *templateNode) {
	holdCur, holdMods := p.curTmpl, p.mods
	p.curTmpl, p.mods = t, nil
	p.print(t.n)
	p.depth++ // the argument list is a level of its own in c++filt
	p.printArgs(t.args)
	p.depth--
	p.curTmpl, p.mods = holdCur, holdMods
}

func (p *printer) printArgs(args []node) {
	if p.last() == '<' {
		p.byte(' ')
	}
	p.byte('<')
	p.printList(args)
	if p.last() == '>' {
		p.byte(' ')
	}
	p.byte('>')
}

// printConversion prints the type of a conversion operator, in whose
// scope the arguments of the enclosing template are visible.
func (p *printer) printConversion(c *conversionOp) {
	hold := p.tmpl
	if p.curTmpl != nil {
		p.tmpl = &tmplFrame{args: p.curTmpl.args, next: hold}
	}
	t, ok := c.t.(*templateNode)
	if !ok {
		p.print(c.t)
		p.tmpl = hold
		return
	}
	p.print(t.n)
	p.tmpl = hold
	p.printArgs(t.args)
}

// lookupArg returns the template argument a template parameter refers
// to, selecting the current element if it is a pack.
func (p *printer) lookupArg(tp *templateParam) node {
	if p.tmpl == nil || tp.idx >= len(p.tmpl.args) {
		p.fail()
	}
	a := p.tmpl.args[tp.idx]
	if pack, ok := a.(*argPack); ok {
		if p.packIndex < 0 || p.packIndex >= len(pack.args) {
			p.fail()
		}
		a = pack.args[p.packIndex]
	}
	return a
}

func (p *printer) printTemplateParam(tp *templateParam) {
	if p.lambdaArg > 0 {
		p.str("auto:")
		p.num(tp.idx + 1)
		return
	}
	a := p.lookupArg(tp)
	// The argument is printed in the scope of the enclosing template.
	hold := p.tmpl
	p.tmpl = hold.next
	p.print(a)
	p.tmpl = hold
}

// findPack returns the first template parameter pack referenced by n
// (not looking into nested pack expansions), or nil.
func (p *printer) findPack(n node) *argPack {
	p.tick()
	p.depth++
	if p.depth > maxPrintDepth {
		p.fail()
	}
	pack := p.findPack1(n)
	p.depth--
	return pack
}

func (p *printer) findPack1(n node) *argPack {
	var kids []node
	switch n := n.(type) {
	case nil:
		return nil
	case *templateParam:
		if p.tmpl == nil {
			p.fail()
		}
		if n.idx >= len(p.tmpl.args) {
			return nil
		}
		pack, _ := p.tmpl.args[n.idx].(*argPack)
		return pack
	case *qualName:
		kids = []node{n.scope, n.n}
	case *templateNode:
		kids = append([]node{n.n}, n.args...)
	case *cvName:
		kids = []node{n.n}
	case *localName:
		kids = []node{n.enc, n.entity}
	case *typedName:
		kids = []node{n.name, n.fn}
	case *funcType:
		kids = append([]node{n.ret}, n.params...)
		for _, q := range n.quals {
			kids = append(kids, q.args...)
		}
	case *modType:
		kids = []node{n.inner}
	case *cvType:
		kids = []node{n.inner}
	case *vendorQual:
		kids = []node{n.inner, n.qual}
	case *ptrMemType:
		kids = []node{n.cls, n.mem}
	case *arrayType:
		kids = []node{n.dim, n.elem}
	case *vectorType:
		kids = []node{n.dim, n.elem}
	case *argPack:
		kids = n.args
	case *decltypeNode:
		kids = []node{n.expr}
	case *literal:
		kids = []node{n.t}
	case *exprList:
		kids = n.items
	case *unaryExpr:
		kids = []node{n.op, n.arg}
	case *binaryExpr:
		kids = []node{n.op, n.l, n.r}
	case *trinaryExpr:
		kids = []node{n.op, n.a, n.b, n.c}
	case *nullaryExpr:
		kids = []node{n.op}
	case *newExpr:
		kids = []node{n.op, n.placement, n.t, n.init}
	case *initList:
		kids = append([]node{n.t}, n.items...)
	case *conversionOp:
		kids = []node{n.t}
	case *specialName:
		kids = []node{n.n}
	case *ctorVtable:
		kids = []node{n.base, n.derived}
	case *cloneName:
		kids = []node{n.n}
	}
	for _, k := range kids {
		if k == nil {
			continue
		}
		if a := p.findPack(k); a != nil {
			return a
		}
	}
	return nil
}

func (p *printer) printPackExpansion(pe *packExpansion) {
	pack := p.findPack(pe.pattern)
	if pack == nil {
		p.printSubexpr(pe.pattern)
		p.str("...")
		return
	}
	for i := range pack.args {
		p.packIndex = i
		p.print(pe.pattern)
		if i < len(pack.args)-1 {
			p.str(", ")
		}
	}
}

// modInner returns the type a modifier node applies to.
func modInner(n node) node {
	switch n := n.(type) {
	case *modType:
		return n.inner
	case *cvType:
		return n.inner
	case *ptrMemType:
		return n.mem
	case *vendorQual:
		return n.inner
	case *vectorType:
		return n.elem
	}
	return nil
}

// printModifier prints a pointer, reference, cv-qualified, complex,
// pointer-to-member, vendor-qualified or vector type.
func (p *printer) printModifier(n node) {
	inner := modInner(n)
	holdTmpl := p.tmpl
	if mt, ok := n.(*modType); ok && (mt.kind == modLRef || mt.kind == modRRef) {
		// Reference collapsing (one level, possibly through a template
		// parameter): & + & = &, & + && = &, && + & = &, && + && = &&.
		sub := mt.inner
		if tp, ok := sub.(*templateParam); ok && p.lambdaArg == 0 {
			if saved, seen := p.scopes[tp]; !seen {
				if p.scopes == nil {
					p.scopes = make(map[*templateParam]*tmplFrame)
				}
				p.scopes[tp] = p.tmpl
			} else if !p.beneath(tp, n) {
				p.tmpl = saved
			}
			sub = p.lookupArg(tp)
		}
		if sm, ok := sub.(*modType); ok {
			if sm.kind == modLRef || sm.kind == mt.kind {
				n, inner = sm, sm.inner
			} else if sm.kind == modRRef {
				inner = sm.inner
			}
		}
	}
	if cv, ok := n.(*cvType); ok {
		p.printCV(cv.cv, inner)
		return
	}
	m := p.push(n, mkType)
	p.print(inner)
	if !m.printed {
		p.printMod(m)
	}
	p.mods = m.next
	p.tmpl = holdTmpl
}

// beneath reports whether tp is being printed, or self (the node on top
// of the stack) is also being printed further out.
func (p *printer) beneath(tp *templateParam, self node) bool {
	top := len(p.stack) - 1
	for i := top; i >= 0; i-- {
		if p.stack[i] == node(tp) || (i != top && p.stack[i] == self) {
			return true
		}
	}
	return false
}

// printCV prints inner qualified by cv (innermost qualifier first). As
// in c++filt, each qualifier is a modifier of its own, and one that is
// already pending directly outside (as in "const T&" with T = "int
// const", or a repeated qualifier) is printed only once.
func (p *printer) printCV(cv string, inner node) {
	var pushed []*pmod
	for i := len(cv) - 1; i >= 0; i-- {
		if p.pendingCV(cv[i]) {
			continue
		}
		pushed = append(pushed, p.push(&cvType{cv: cv[i : i+1]}, mkType))
	}
	p.depth += len(cv) // one level per qualifier in c++filt
	p.print(inner)
	p.depth -= len(cv)
	for i := len(pushed) - 1; i >= 0; i-- {
		m := pushed[i]
		if !m.printed {
			p.printMod(m)
		}
		p.mods = m.next
	}
}

// pendingCV reports whether qualifier c is in the run of unprinted
// cv-qualifier modifiers at the top of the stack.
func (p *printer) pendingCV(c byte) bool {
	for m := p.mods; m != nil; m = m.next {
		if m.printed {
			continue
		}
		cv, ok := m.n.(*cvType)
		if !ok || m.kind != mkType {
			return false
		}
		if strings.IndexByte(cv.cv, c) >= 0 {
			return true
		}
	}
	return false
}

// printMod prints one modifier in its suffix form.
func (p *printer) printMod(m *pmod) {
	switch m.kind {
	case mkFnQual:
		for _, q := range m.quals {
			p.str(q.text)
			if q.paren {
				p.byte('(')
				p.printList(q.args)
				p.byte(')')
			}
		}
		return
	case mkName:
		p.print(m.n)
		return
	}
	switch n := m.n.(type) {
	case *modType:
		switch n.kind {
		case modPointer:
			p.byte('*')
		case modLRef:
			p.byte('&')
		case modRRef:
			p.str("&&")
		case modComplex:
			p.str(" _Complex")
		case modImaginary:
			p.str(" _Imaginary")
		}
	case *cvType:
		for i := 0; i < len(n.cv); i++ {
			p.str(cvText(n.cv[i]))
		}
	case *ptrMemType:
		if p.last() != '(' {
			p.byte(' ')
		}
		if !p.classLike(n.cls) {
			// c++filt prints e.g. an array "class" using the pending
			// modifiers in ways not worth imitating for invalid input.
			p.fail()
		}
		p.print(n.cls)
		p.str("::*")
	case *vendorQual:
		p.byte(' ')
		p.print(n.qual)
	case *vectorType:
		p.str(" __vector(")
		p.print(n.dim)
		p.byte(')')
	default:
		p.print(m.n)
	}
}

// classLike reports whether n, the class of a pointer to member, can be
// a class (resolving template parameters).
func (p *printer) classLike(n node) bool {
	for range maxPrintDepth {
		switch t := n.(type) {
		case *templateParam:
			if p.lambdaArg > 0 {
				return true
			}
			n = p.lookupArg(t)
			continue
		case *arrayType, *funcType, *modType, *cvType, *ptrMemType, *vectorType, *vendorQual, *packExpansion, *argPack:
			return false
		}
		return true
	}
	return false
}

func cvText(c byte) string {
	switch c {
	case 'K':
		return " const"
	case 'V':
		return " volatile"
	}
	return " restrict"
}

// printModList prints the pending modifiers, innermost first. Function
// qualifiers are only printed in the suffix pass (after a parameter
// list). A function or array type prints the rest of the list itself.
func (p *printer) printModList(mods *pmod, suffix bool) {
	for m := mods; m != nil; m = m.next {
		if m.printed || (!suffix && m.kind == mkFnQual) {
			continue
		}
		m.printed = true
		hold := p.tmpl
		p.tmpl = m.tmpl
		switch m.kind {
		case mkFunc:
			p.printFunctionType(m.n.(*funcType), m.next)
			p.tmpl = hold
			return
		case mkArray:
			p.printArrayType(m.n.(*arrayType), m.next)
			p.tmpl = hold
			return
		case mkName:
			if ln, ok := m.n.(*localName); ok {
				holdMods := p.mods
				p.mods = nil
				p.print(ln.enc)
				p.mods = holdMods
				p.str("::")
				ent := ln.entity
				if da, ok := ent.(*defaultArg); ok {
					p.str("{default arg#")
					p.num(da.num + 1)
					p.str("}::")
					ent = da.n
				}
				if cn, ok := ent.(*cvName); ok {
					ent = cn.n
				}
				p.print(ent)
				p.tmpl = hold
				return
			}
		}
		p.printMod(m)
		p.tmpl = hold
	}
}

// printFuncTypeNode prints a function type, as a type or as the type of
// a function being declared.
func (p *printer) printFuncTypeNode(fn *funcType) {
	var q *pmod
	if len(fn.quals) > 0 {
		q = p.push(fn, mkFnQual)
		q.quals = fn.quals
	}
	if fn.ret != nil {
		m := p.push(fn, mkFunc)
		p.print(fn.ret)
		p.mods = m.next
		if !m.printed {
			p.byte(' ')
			p.printFunctionType(fn, p.mods)
		}
	} else {
		p.printFunctionType(fn, p.mods)
	}
	if q != nil {
		if !q.printed {
			p.printMod(q)
		}
		p.mods = q.next
	}
}

// printFunctionType prints the declarator part of a function type: the
// pending modifiers (parenthesized if needed), the parameter list and
// the function qualifiers.
func (p *printer) printFunctionType(fn *funcType, mods *pmod) {
	needParen, needSpace := false, false
	for m := mods; m != nil && !m.printed; m = m.next {
		if m.kind != mkType {
			continue
		}
		switch n := m.n.(type) {
		case *modType:
			if n.kind == modPointer || n.kind == modLRef || n.kind == modRRef {
				needParen = true
			} else {
				needParen, needSpace = true, true
			}
		case *cvType, *vendorQual, *ptrMemType:
			needParen, needSpace = true, true
		}
		if needParen {
			break
		}
	}
	if needParen {
		if !needSpace && p.last() != '(' && p.last() != '*' {
			needSpace = true
		}
		if needSpace && p.last() != ' ' {
			p.byte(' ')
		}
		p.byte('(')
	}
	hold := p.mods
	p.mods = nil
	p.printModList(mods, false)
	if needParen {
		p.byte(')')
	}
	p.byte('(')
	p.printList(fn.params)
	p.byte(')')
	p.printModList(mods, true)
	p.mods = hold
}

// printArrayNode prints an array type. cv-qualifiers applied to the
// array are printed with the element type, as c++filt does.
func (p *printer) printArrayNode(a *arrayType) {
	hold := p.mods
	var moved []*pmod
	for m := hold; m != nil; m = m.next {
		if m.printed {
			continue
		}
		if _, ok := m.n.(*cvType); !ok || m.kind != mkType {
			break
		}
		moved = append(moved, &pmod{n: m.n, kind: mkType, tmpl: m.tmpl})
		m.printed = true
	}
	self := p.push(a, mkArray)
	for _, m := range moved {
		m.next = p.mods
		p.mods = m
	}
	p.print(a.elem)
	p.mods = hold
	if self.printed {
		return
	}
	for i := len(moved) - 1; i >= 0; i-- {
		p.printMod(moved[i])
	}
	p.printArrayType(a, p.mods)
}

// printArrayType prints the declarator part of an array type.
func (p *printer) printArrayType(a *arrayType, mods *pmod) {
	needSpace := true
	if mods != nil {
		needParen := false
		for m := mods; m != nil; m = m.next {
			if m.printed {
				continue
			}
			if m.kind == mkArray {
				needSpace = false
			} else {
				needParen, needSpace = true, true
			}
			break
		}
		if needParen {
			p.str(" (")
		}
		p.printModList(mods, false)
		if needParen {
			p.byte(')')
		}
	}
	if needSpace {
		p.byte(' ')
	}
	p.byte('[')
	if a.dim != nil {
		p.print(a.dim)
	}
	p.byte(']')
}

// printTypedName prints a function: return type, name, parameters and
// qualifiers, with the name placed inside the declarator.
func (p *printer) printTypedName(t *typedName) {
	// A function named inside a type (a template argument such as
	// L_Z1gvE reached through T_) does not take part in the declarator
	// being printed around it: "g()* f<g()>()".
	hold := p.mods
	p.mods = nil
	var pushed []*pmod
	name := t.name
	if cn, ok := name.(*cvName); ok {
		m := p.push(cn, mkFnQual)
		m.quals = cn.quals
		pushed = append(pushed, m)
		name = cn.n
	}
	pushed = append(pushed, p.push(name, mkName))
	scope := name
	if ln, ok := name.(*localName); ok {
		scope = ln.entity
		if da, ok := scope.(*defaultArg); ok {
			scope = da.n
		}
		if cn, ok := scope.(*cvName); ok {
			m := p.push(cn, mkFnQual)
			m.quals = cn.quals
			pushed = append(pushed, m)
			scope = cn.n
		}
	}
	holdTmpl := p.tmpl
	if tn, ok := scope.(*templateNode); ok {
		p.tmpl = &tmplFrame{args: tn.args, next: p.tmpl}
	}
	p.print(t.fn)
	p.tmpl = holdTmpl
	for i := len(pushed) - 1; i >= 0; i-- {
		if !pushed[i].printed {
			p.byte(' ')
			p.printMod(pushed[i])
		}
	}
	p.mods = hold
}

// printSubexpr prints an operand, parenthesized unless it is a name or
// function parameter.
func (p *printer) printSubexpr(n node) {
	simple := false
	switch n := n.(type) {
	case *nameNode:
		simple = !n.abbrev
	case *qualName, *initList, *funcParam:
		simple = true
	}
	if !simple {
		p.byte('(')
	}
	p.print(n)
	if !simple {
		p.byte(')')
	}
}

// printExprOp prints an operator as it appears in an expression.
func (p *printer) printExprOp(op node) {
	if o, ok := op.(*operatorName); ok {
		p.str(o.op.name)
		return
	}
	p.print(op)
}

func (p *printer) printUnary(u *unaryExpr) {
	arg := u.arg
	if c, ok := u.op.(*conversionOp); ok {
		p.byte('(')
		p.print(c.t)
		p.byte(')')
		p.printSubexpr(arg)
		return
	}
	o, ok := u.op.(*operatorName)
	if !ok {
		p.fail()
	}
	code := o.op.code
	if code == "ad" {
		// The address of a qualified function omits its parameters.
		if tn, ok := arg.(*typedName); ok {
			if _, ok := tn.name.(*qualName); ok {
				arg = tn.name
			}
		}
	}
	if u.postfix {
		p.printSubexpr(arg)
		p.str(o.op.name)
		return
	}
	if code == "sZ" {
		n := 0
		if pack := p.findPack(arg); pack != nil {
			n = len(pack.args)
		}
		p.num(n)
		return
	}
	p.str(o.op.name)
	switch code {
	case "gs":
		p.print(arg)
	case "st":
		p.byte('(')
		p.print(arg)
		p.byte(')')
	default:
		p.printSubexpr(arg)
	}
}

func (p *printer) printBinary(b *binaryExpr) {
	o, ok := b.op.(*operatorName)
	if !ok {
		p.fail()
	}
	code := o.op.code
	if isNewCast(code) {
		p.str(o.op.name)
		p.byte('<')
		p.print(b.l)
		p.str(">(")
		p.print(b.r)
		p.byte(')')
		return
	}
	gt := o.op.name == ">"
	if gt {
		p.byte('(')
	}
	l := b.l
	if code == "cl" {
		if tn, ok := l.(*typedName); ok {
			l = tn.name
		}
	}
	p.printSubexpr(l)
	switch code {
	case "ix":
		p.byte('[')
		p.print(b.r)
		p.byte(']')
	case "cl":
		p.printSubexpr(b.r)
	default:
		p.str(o.op.name)
		p.printSubexpr(b.r)
	}
	if gt {
		p.byte(')')
	}
}

// printLiteral prints an integer, boolean or other literal the way
// c++filt does: 5, 5u, -5l, true, (char)65, (float)[40a00000].
func (p *printer) printLiteral(l *literal) {
	code := ""
	if b, ok := l.t.(*builtinNode); ok {
		code = b.code
	}
	suffix, isInt := "", false
	switch code {
	case "i":
		isInt = true
	case "j":
		suffix, isInt = "u", true
	case "l":
		suffix, isInt = "l", true
	case "m":
		suffix, isInt = "ul", true
	case "x":
		suffix, isInt = "ll", true
	case "y":
		suffix, isInt = "ull", true
	case "b":
		if len(l.val) == 1 && !l.neg {
			switch l.val[0] {
			case '0':
				p.str("false")
				return
			case '1':
				p.str("true")
				return
			}
		}
	}
	if isInt {
		if l.neg {
			p.byte('-')
		}
		p.str(l.val)
		p.str(suffix)
		return
	}
	p.byte('(')
	p.print(l.t)
	p.byte(')')
	if l.neg {
		p.byte('-')
	}
	float := false
	switch code {
	case "f", "d", "e", "g", "Dh":
		float = true
	}
	if float {
		p.byte('[')
	}
	p.str(l.val)
	if float {
		p.byte(']')
	}
}
