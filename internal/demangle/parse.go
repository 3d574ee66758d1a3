package demangle

import "strconv"

// failure is the panic value used internally to abandon a parse or a
// print; it never escapes the package (see demangle in demangle.go).
type failure struct{}

// parser is a recursive-descent parser for the Itanium C++ ABI mangling
// grammar. It builds the tree of ast.go; printing is done separately.
type parser struct {
	s     string
	pos   int
	subs  []node // substitution candidates, in order
	depth int

	// lastName is the most recent source name, used to name constructors
	// and destructors (as c++filt does, template arguments and ABI tags
	// do not change it).
	lastName string

	inExpr    bool // parsing an expression: "cv" is a cast
	inConv    bool // parsing the type of a conversion operator
	inNewInit int  // parsing the initializer of a new-expression
}

func (p *parser) fail() { panic(failure{}) }

func (p *parser) peek() byte {
	if p.pos < len(p.s) {
		return p.s[p.pos]
	}
	return 0
}

func (p *parser) peekAt(k int) byte {
	if p.pos+k < len(p.s) {
		return p.s[p.pos+k]
	}
	return 0
}

func (p *parser) next() byte {
	c := p.peek()
	if c == 0 {
		p.fail()
	}
	p.pos++
	return c
}

func (p *parser) consume(c byte) bool {
	if p.peek() == c && c != 0 {
		p.pos++
		return true
	}
	return false
}

func (p *parser) expect(c byte) {
	if !p.consume(c) {
		p.fail()
	}
}

// enter guards recursion; every recursive production calls it, and
// leave on success. (Deferred calls would make unwinding a deep failed
// parse slow; after a failure the parser is discarded anyway.)
func (p *parser) enter() {
	p.depth++
	if p.depth > maxParseDepth {
		p.fail()
	}
}

func (p *parser) leave() { p.depth-- }

func (p *parser) addSub(n node) {
	if len(p.subs) >= maxSubs {
		p.fail()
	}
	p.subs = append(p.subs, n)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }

// number parses a non-negative decimal number without sign. It fails if
// there are no digits or the value is implausibly large.
func (p *parser) number() int {
	start := p.pos
	n := 0
	for isDigit(p.peek()) {
		n = n*10 + int(p.peek()-'0')
		if n > 1<<30 {
			p.fail()
		}
		p.pos++
	}
	if p.pos == start {
		p.fail()
	}
	return n
}

// lenientNumber parses [n] <digits>*, accepting zero digits, like the
// call offsets of thunks and the construction vtable offset.
func (p *parser) lenientNumber() {
	p.consume('n')
	for isDigit(p.peek()) {
		p.pos++
	}
}

// compactNumber parses "_" (0) or <number> "_" (number+1).
func (p *parser) compactNumber() int {
	if p.consume('_') {
		return 0
	}
	n := p.number() + 1
	p.expect('_')
	return n
}

// discriminator parses an optional local-entity discriminator.
func (p *parser) discriminator() {
	if !p.consume('_') {
		return
	}
	two := p.consume('_')
	n := p.number()
	if two && n >= 10 {
		p.expect('_')
	}
}

// mangledName parses <encoding> after "_Z", followed at top level by any
// clone suffixes.
func (p *parser) mangledName(top bool) node {
	n := p.encoding(top)
	if top {
		for p.peek() == '.' {
			c := p.peekAt(1)
			if !isLower(c) && !isDigit(c) && c != '_' {
				break
			}
			n = p.cloneSuffix(n)
		}
	}
	return n
}

// cloneSuffix parses .<lowercase/digits/_>* (.<digits>)* after an
// encoding, e.g. ".constprop.0" or ".cold".
func (p *parser) cloneSuffix(n node) node {
	start := p.pos
	p.pos += 2
	for c := p.peek(); isLower(c) || isDigit(c) || c == '_'; c = p.peek() {
		p.pos++
	}
	for p.peek() == '.' && isDigit(p.peekAt(1)) {
		p.pos += 2
		for isDigit(p.peek()) {
			p.pos++
		}
	}
	return &cloneName{n: n, suffix: p.s[start:p.pos]}
}

// encoding parses <encoding> ::= <name> <bare-function-type> | <name> |
// <special-name>.
func (p *parser) encoding(top bool) node {
	p.enter()
	n := p.encoding1(top)
	p.leave()
	return n
}

func (p *parser) encoding1(top bool) node {
	if c := p.peek(); c == 'G' || c == 'T' {
		return p.specialName()
	}
	name := p.name(false)
	if c := p.peek(); c == 0 || c == 'E' {
		return name
	}
	fn := p.bareFunctionType(hasReturnType(name))
	if !top {
		if _, ok := name.(*localName); ok {
			fn.ret = nil
		}
	}
	return &typedName{name: name, fn: fn}
}

// hasReturnType reports whether a function with this name encodes its
// return type: templates other than constructors, destructors and
// conversion operators.
func hasReturnType(n node) bool {
	switch n := n.(type) {
	case *localName:
		return hasReturnType(n.entity)
	case *templateNode:
		return !isCtorDtorConv(n.n)
	case *cvName:
		return hasReturnType(n.n)
	}
	return false
}

func isCtorDtorConv(n node) bool {
	switch n := n.(type) {
	case *qualName:
		return isCtorDtorConv(n.n)
	case *localName:
		return isCtorDtorConv(n.entity)
	case *ctorDtorName, *conversionOp:
		return true
	}
	return false
}

// bareFunctionType parses [J] [<return type>] <parameter types>.
func (p *parser) bareFunctionType(hasRet bool) *funcType {
	if p.consume('J') {
		hasRet = true
	}
	fn := &funcType{}
	if hasRet {
		fn.ret = p.typ()
	}
	fn.params = p.paramList()
	return fn
}

// paramList parses parameter types up to the end, E, a clone suffix or a
// function ref-qualifier. A lone void means no parameters.
func (p *parser) paramList() []node {
	var ps []node
	for {
		c := p.peek()
		if c == 0 || c == 'E' || c == '.' {
			break
		}
		if (c == 'R' || c == 'O') && p.peekAt(1) == 'E' {
			break
		}
		ps = append(ps, p.typ())
	}
	if len(ps) == 0 {
		p.fail()
	}
	if len(ps) == 1 {
		if b, ok := ps[0].(*builtinNode); ok && b.code == "v" {
			return nil
		}
	}
	return ps
}

// name parses <name>. When substable is set (class-enum types), the name
// is recorded as a substitution candidate.
func (p *parser) name(substable bool) node {
	p.enter()
	n := p.name1(substable)
	p.leave()
	return n
}

func (p *parser) name1(substable bool) node {
	var n node
	switch p.peek() {
	case 'N':
		n = p.nestedName()
	case 'Z':
		n = p.localName()
	case 'U':
		n = p.unqualifiedName(nil)
	default:
		subst := false
		if p.peek() == 'S' && p.peekAt(1) == 't' {
			p.pos += 2
			n = p.unqualifiedName(&nameNode{s: "std"})
		} else if p.peek() == 'S' {
			n = p.substitution()
			subst = true
		} else {
			n = p.unqualifiedName(nil)
		}
		if p.peek() == 'I' {
			// <unscoped-template-name> <template-args>: the template name
			// is a candidate unless it already was a substitution.
			if !subst {
				p.addSub(n)
			}
			n = &templateNode{n: n, args: p.templateArgs()}
			subst = false
		}
		if substable && !subst {
			p.addSub(n)
		}
		return n
	}
	if substable {
		p.addSub(n)
	}
	return n
}

// qualKind is one parsed CV-qualifier or function-type qualifier.
type qualKind struct {
	c    byte // 'r', 'V', 'K', 'x' (Dx), 'o' (Do), 'O' (DO), 'w' (Dw)
	args []node
}

func (p *parser) nextIsQual() bool {
	switch p.peek() {
	case 'r', 'V', 'K':
		return true
	case 'D':
		switch p.peekAt(1) {
		case 'x', 'o', 'O', 'w':
			return true
		}
	}
	return false
}

// qualifiers parses <CV-qualifiers> and the function-type qualifiers
// (Dx, Do, DO <expr> E, Dw <type>+ E), in mangled order.
func (p *parser) qualifiers() []qualKind {
	var qs []qualKind
	for p.nextIsQual() {
		c := p.next()
		if c != 'D' {
			qs = append(qs, qualKind{c: c})
			continue
		}
		c = p.next()
		q := qualKind{c: c}
		switch c {
		case 'O':
			q.args = []node{p.expression()}
			p.expect('E')
		case 'w':
			// Parsed like a parameter list: at least one type, and a
			// lone void means none.
			q.args = p.paramList()
			p.expect('E')
		}
		qs = append(qs, q)
	}
	return qs
}

// fnQuals converts parsed qualifiers into the order c++filt prints them
// after a parameter list (innermost, i.e. last mangled, first).
func fnQuals(qs []qualKind) []fnQual {
	out := make([]fnQual, 0, len(qs))
	for i := len(qs) - 1; i >= 0; i-- {
		q := qs[i]
		switch q.c {
		case 'r':
			out = append(out, fnQual{text: " restrict"})
		case 'V':
			out = append(out, fnQual{text: " volatile"})
		case 'K':
			out = append(out, fnQual{text: " const"})
		case 'x':
			out = append(out, fnQual{text: " transaction_safe"})
		case 'o':
			out = append(out, fnQual{text: " noexcept"})
		case 'O':
			out = append(out, fnQual{text: " noexcept", args: q.args, paren: true})
		case 'w':
			out = append(out, fnQual{text: " throw", args: q.args, paren: true})
		}
	}
	return out
}

// refQual parses an optional <ref-qualifier>.
func (p *parser) refQual() (fnQual, bool) {
	switch {
	case p.consume('R'):
		return fnQual{text: " &"}, true
	case p.consume('O'):
		return fnQual{text: " &&"}, true
	}
	return fnQual{}, false
}

// nestedName parses N [<CV-qualifiers>] [<ref-qualifier>] <prefix> E.
func (p *parser) nestedName() node {
	p.expect('N')
	qs := p.qualifiers()
	for _, q := range qs {
		if q.c != 'r' && q.c != 'V' && q.c != 'K' {
			p.fail()
		}
	}
	quals := fnQuals(qs)
	if rq, ok := p.refQual(); ok {
		quals = append(quals, rq)
	}
	n := p.prefix()
	p.expect('E')
	if len(quals) > 0 {
		return &cvName{n: n, quals: quals}
	}
	return n
}

// prefix parses the components of a nested name up to (not including)
// the closing E, recording each proper prefix as a substitution.
func (p *parser) prefix() node {
	var ret node
	onlySub := false // ret is just a substitution, which c++filt rejects
	for {
		c := p.peek()
		switch c {
		case 0:
			p.fail()
		case 'E':
			if ret == nil || onlySub {
				p.fail()
			}
			return ret
		case 'M':
			// Initializer scope of a closure type; not printed.
			if ret == nil || p.peekAt(1) == 'E' {
				p.fail()
			}
			p.pos++
			continue
		}
		switch {
		case c == 'D' && (p.peekAt(1) == 'T' || p.peekAt(1) == 't'):
			if ret != nil {
				p.fail()
			}
			ret = p.typ()
		case c == 'I':
			if ret == nil {
				p.fail()
			}
			ret = &templateNode{n: ret, args: p.templateArgs()}
		case c == 'T':
			if ret != nil {
				p.fail()
			}
			ret = p.templateParam()
		case c == 'S':
			if ret != nil {
				p.fail()
			}
			ret = p.substitution()
			onlySub = true
			continue
		default:
			ret = p.unqualifiedName(ret)
		}
		onlySub = false
		if p.peek() != 'E' {
			p.addSub(ret)
		}
	}
}

// unqualifiedName parses <unqualified-name> [<abi-tags>], qualified by
// scope when scope is not nil.
func (p *parser) unqualifiedName(scope node) node {
	p.enter()
	n := p.unqualifiedName1(scope)
	p.leave()
	return n
}

func (p *parser) unqualifiedName1(scope node) node {
	var n node
	c := p.peek()
	switch {
	case isDigit(c):
		n = p.sourceName()
	case isLower(c):
		saved := p.inExpr
		if c == 'o' && p.peekAt(1) == 'n' {
			// operator-function-id in an expression: "cv" names a
			// conversion operator, not a cast.
			p.pos += 2
			p.inExpr = false
		}
		n = p.operatorName()
		p.inExpr = saved
		if op, ok := n.(*operatorName); ok && op.op.code == "li" {
			n = &literalOp{suffix: p.sourceIdent()}
		}
	case c == 'D' && p.peekAt(1) == 'C':
		p.pos += 2
		b := &bindingName{}
		for {
			b.names = append(b.names, p.sourceIdent())
			if p.consume('E') {
				break
			}
		}
		n = b
	case c == 'C' || c == 'D':
		n = p.ctorDtorName()
	case c == 'L':
		p.pos++
		n = p.sourceName()
		p.discriminator()
	case c == 'U':
		switch p.peekAt(1) {
		case 'l':
			n = p.lambda()
		case 't':
			// c++filt records an unnamed type as a substitution
			// candidate by itself (besides any enclosing prefix).
			p.pos += 2
			n = &unnamedType{num: p.compactNumber()}
			p.addSub(n)
		default:
			p.fail()
		}
	default:
		p.fail()
	}
	if p.peek() == 'B' {
		n = p.abiTags(n)
	}
	if scope != nil {
		n = &qualName{scope: scope, n: n}
	}
	return n
}

// sourceIdent parses <source-name> ::= <length> <identifier> and returns
// the identifier, rewriting GCC's anonymous namespace names.
func (p *parser) sourceIdent() string {
	n := p.number()
	if n == 0 || n > len(p.s)-p.pos {
		p.fail()
	}
	id := p.s[p.pos : p.pos+n]
	p.pos += n
	if len(id) >= 10 && id[:8] == "_GLOBAL_" && (id[8] == '.' || id[8] == '_' || id[8] == '$') && id[9] == 'N' {
		return "(anonymous namespace)"
	}
	return id
}

// sourceName parses a <source-name> and records it as the last name.
func (p *parser) sourceName() node {
	id := p.sourceIdent()
	p.lastName = id
	return &nameNode{s: id}
}

// abiTags parses B <source-name> repeatedly.
func (p *parser) abiTags(n node) node {
	for p.consume('B') {
		n = &taggedName{n: n, tag: p.sourceIdent()}
	}
	return n
}

// ctorDtorName parses C1..C5, CI1/CI2 <base type>, D0..D5.
func (p *parser) ctorDtorName() node {
	name := p.lastName
	if p.consume('C') {
		inheriting := p.consume('I')
		switch p.next() {
		case '1', '2', '3', '4', '5':
		default:
			p.fail()
		}
		if inheriting {
			p.typ()
		}
		if name == "" {
			p.fail()
		}
		return &ctorDtorName{n: name}
	}
	p.expect('D')
	switch p.next() {
	case '0', '1', '2', '4', '5':
	default:
		p.fail()
	}
	if name == "" {
		p.fail()
	}
	return &ctorDtorName{dtor: true, n: name}
}

// lambda parses Ul <lambda-sig> E [<number>] _.
func (p *parser) lambda() node {
	p.pos += 2
	params := p.paramList()
	p.expect('E')
	return &lambdaName{params: params, num: p.compactNumber()}
}

// operatorName parses <operator-name>.
func (p *parser) operatorName() node {
	c1 := p.next()
	c2 := p.next()
	switch {
	case c1 == 'v' && isDigit(c2):
		// The name counts as the last source name, as in c++filt.
		return &vendorOp{name: p.sourceName().(*nameNode).s}
	case c1 == 'c' && c2 == 'v':
		cast := p.inExpr
		saved := p.inConv
		p.inConv = !cast
		t := p.typ()
		p.inConv = saved
		return &conversionOp{t: t, cast: cast}
	}
	op, ok := lookupOperator(string([]byte{c1, c2}))
	if !ok {
		p.fail()
	}
	return &operatorName{op: op}
}

// substitution parses S_, S<seq-id>_ and the standard abbreviations.
func (p *parser) substitution() node {
	p.expect('S')
	c := p.next()
	if c == '_' || isDigit(c) || isUpper(c) {
		id := 0
		if c != '_' {
			for c != '_' {
				switch {
				case isDigit(c):
					id = id*36 + int(c-'0')
				case isUpper(c):
					id = id*36 + int(c-'A') + 10
				default:
					p.fail()
				}
				if id > maxSubs {
					p.fail()
				}
				c = p.next()
			}
			id++
		}
		if id >= len(p.subs) {
			p.fail()
		}
		return p.subs[id]
	}
	if c == 't' {
		return &nameNode{s: "std"}
	}
	full, base := stdSub(c)
	if full == "" {
		p.fail()
	}
	p.lastName = base
	return &nameNode{s: full, abbrev: true}
}

// templateParam parses T_ or T <number> _.
func (p *parser) templateParam() node {
	p.expect('T')
	return &templateParam{idx: p.compactNumber()}
}

// templateArgs parses I <template-arg>* E (or J ... E for a pack).
func (p *parser) templateArgs() []node {
	p.enter()
	args := p.templateArgs1()
	p.leave()
	return args
}

func (p *parser) templateArgs1() []node {
	if c := p.next(); c != 'I' && c != 'J' {
		p.fail()
	}
	saved := p.lastName
	args := []node{}
	for !p.consume('E') {
		args = append(args, p.templateArg())
	}
	p.lastName = saved
	return args
}

// templateArg parses one <template-arg>.
func (p *parser) templateArg() node {
	switch p.peek() {
	case 'X':
		p.pos++
		e := p.expression()
		p.expect('E')
		return e
	case 'L':
		return p.exprPrimary()
	case 'I', 'J':
		return &argPack{args: p.templateArgs()}
	}
	return p.typ()
}

// exprPrimary parses L <type> <value> E, L <mangled-name> E.
func (p *parser) exprPrimary() node {
	p.enter()
	n := p.exprPrimary1()
	p.leave()
	return n
}

func (p *parser) exprPrimary1() node {
	p.expect('L')
	if c := p.peek(); c == '_' || c == 'Z' {
		p.consume('_')
		p.expect('Z')
		n := p.encoding(false)
		p.expect('E')
		return n
	}
	t := p.typ()
	if b, ok := t.(*builtinNode); ok && b.code == "Dn" && p.consume('E') {
		return t
	}
	neg := p.consume('n')
	start := p.pos
	for p.peek() != 'E' {
		p.next()
	}
	val := p.s[start:p.pos]
	if val == "" {
		p.fail()
	}
	p.pos++
	return &literal{t: t, val: val, neg: neg}
}

// typ parses <type>, recording substitution candidates.
func (p *parser) typ() node {
	p.enter()
	n := p.typ1()
	p.leave()
	return n
}

func (p *parser) typ1() node {
	if p.nextIsQual() {
		qs := p.qualifiers()
		var n node
		if p.peek() == 'F' {
			// Qualifiers on a function type apply to "this"; only the
			// qualified function type is a substitution candidate.
			fn := p.functionType()
			fn.quals = append(fnQuals(qs), fn.quals...)
			n = fn
		} else {
			cv := make([]byte, 0, len(qs))
			for i := len(qs) - 1; i >= 0; i-- {
				switch qs[i].c {
				case 'r', 'V', 'K':
					cv = append(cv, qs[i].c)
				default:
					p.fail()
				}
			}
			inner := p.typ()
			// cv-qualifiers applied (through a substitution) to a
			// ref-qualified function type or nested name: c++filt
			// rewrites the shared node in place, changing its earlier
			// uses too. Reject rather than imitate.
			var quals []fnQual
			switch in := inner.(type) {
			case *cvName:
				quals = in.quals
			case *funcType:
				quals = in.quals
			}
			if len(quals) > 0 {
				if q := quals[len(quals)-1].text; q == " &" || q == " &&" {
					p.fail()
				}
			}
			n = &cvType{cv: string(cv), inner: inner}
		}
		p.addSub(n)
		return n
	}

	c := p.peek()
	if s := builtinType(c); s != "" {
		p.pos++
		return &builtinNode{s: s, code: string(c)}
	}
	var n node
	switch c {
	case 'u':
		p.pos++
		n = &builtinNode{s: p.sourceIdent(), code: "u"}
	case 'F':
		n = p.functionType()
	case 'N', 'Z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return p.name(true)
	case 'A':
		n = p.arrayType()
	case 'M':
		p.pos++
		cls := p.typ()
		n = &ptrMemType{cls: cls, mem: p.typ()}
	case 'T':
		if c2 := p.peekAt(1); c2 != '_' && !isDigit(c2) {
			p.fail()
		}
		n = p.templateParam()
		if p.peek() == 'I' {
			if !p.inConv {
				p.addSub(n)
				n = &templateNode{n: n, args: p.templateArgs()}
			} else {
				// In a conversion operator's type, template args
				// following a template parameter belong to the
				// operator unless a second set follows.
				pos, nsubs, last := p.pos, len(p.subs), p.lastName
				args := p.templateArgs()
				if p.peek() == 'I' {
					p.addSub(n)
					n = &templateNode{n: n, args: args}
				} else {
					p.pos, p.subs, p.lastName = pos, p.subs[:nsubs], last
				}
			}
		}
	case 'S':
		c2 := p.peekAt(1)
		if c2 == '_' || isDigit(c2) || isUpper(c2) {
			n = p.substitution()
			if p.peek() != 'I' {
				return n
			}
			n = &templateNode{n: n, args: p.templateArgs()}
		} else {
			return p.name(true)
		}
	case 'P':
		p.pos++
		n = &modType{kind: modPointer, inner: p.typ()}
	case 'R':
		p.pos++
		n = &modType{kind: modLRef, inner: p.typ()}
	case 'O':
		p.pos++
		n = &modType{kind: modRRef, inner: p.typ()}
	case 'C':
		p.pos++
		n = &modType{kind: modComplex, inner: p.typ()}
	case 'G':
		p.pos++
		n = &modType{kind: modImaginary, inner: p.typ()}
	case 'U':
		p.pos++
		var q node = &nameNode{s: p.sourceIdent()}
		if p.peek() == 'I' {
			q = &templateNode{n: q, args: p.templateArgs()}
		}
		n = &vendorQual{inner: p.typ(), qual: q}
	case 'D':
		c2 := p.peekAt(1)
		if s := builtinD(c2); s != "" {
			p.pos += 2
			return &builtinNode{s: s, code: "D" + string(c2)}
		}
		switch c2 {
		case 'F':
			start := p.pos
			p.pos += 2
			bits := p.number()
			suffix := ""
			if p.consume('x') {
				suffix = "x"
			} else {
				p.expect('_')
			}
			return &builtinNode{s: "_Float" + strconv.Itoa(bits) + suffix, code: p.s[start:p.pos]}
		case 'T', 't':
			p.pos += 2
			n = &decltypeNode{expr: p.expression()}
			p.expect('E')
		case 'p':
			p.pos += 2
			n = &packExpansion{pattern: p.typ()}
		case 'v':
			p.pos += 2
			var dim node
			if p.consume('_') {
				dim = p.expression()
			} else {
				start := p.pos
				p.number()
				dim = &nameNode{s: p.s[start:p.pos]}
			}
			p.expect('_')
			n = &vectorType{dim: dim, elem: p.typ()}
		default:
			p.fail()
		}
	default:
		p.fail()
	}
	p.addSub(n)
	return n
}

// functionType parses F [Y] <bare-function-type> [<ref-qualifier>] E.
func (p *parser) functionType() *funcType {
	p.expect('F')
	p.consume('Y')
	fn := p.bareFunctionType(true)
	if rq, ok := p.refQual(); ok {
		fn.quals = append(fn.quals, rq)
	}
	p.expect('E')
	return fn
}

// arrayType parses A <number> _ <type>, A [<expression>] _ <type>.
func (p *parser) arrayType() node {
	p.expect('A')
	var dim node
	switch c := p.peek(); {
	case c == '_':
	case isDigit(c):
		start := p.pos
		p.number()
		dim = &nameNode{s: p.s[start:p.pos]}
	default:
		dim = p.expression()
	}
	p.expect('_')
	return &arrayType{dim: dim, elem: p.typ()}
}

// localName parses Z <encoding> E <entity> [<discriminator>], including
// string literals and default-argument scopes.
func (p *parser) localName() node {
	p.expect('Z')
	enc := p.encoding(false)
	p.expect('E')
	var entity node
	if p.consume('s') {
		p.discriminator()
		entity = &nameNode{s: "string literal"}
	} else {
		num := -1
		if p.consume('d') {
			num = p.compactNumber()
		}
		entity = p.name(false)
		switch entity.(type) {
		case *lambdaName, *unnamedType:
		default:
			p.discriminator()
		}
		if num >= 0 {
			entity = &defaultArg{num: num, n: entity}
		}
	}
	// The enclosing function's return type is not printed.
	if tn, ok := enc.(*typedName); ok && tn.fn.ret != nil {
		fn := *tn.fn
		fn.ret = nil
		enc = &typedName{name: tn.name, fn: &fn}
	}
	return &localName{enc: enc, entity: entity}
}

// specialName parses the T and G special names.
func (p *parser) specialName() node {
	c1 := p.next()
	c2 := p.next()
	if c1 == 'T' {
		switch c2 {
		case 'V':
			return &specialName{prefix: "vtable for ", n: p.typ()}
		case 'T':
			return &specialName{prefix: "VTT for ", n: p.typ()}
		case 'I':
			return &specialName{prefix: "typeinfo for ", n: p.typ()}
		case 'S':
			return &specialName{prefix: "typeinfo name for ", n: p.typ()}
		case 'F':
			return &specialName{prefix: "typeinfo fn for ", n: p.typ()}
		case 'h':
			p.callOffset('h')
			return &specialName{prefix: "non-virtual thunk to ", n: p.encoding(false)}
		case 'v':
			p.callOffset('v')
			return &specialName{prefix: "virtual thunk to ", n: p.encoding(false)}
		case 'c':
			p.callOffset(p.next())
			p.callOffset(p.next())
			return &specialName{prefix: "covariant return thunk to ", n: p.encoding(false)}
		case 'C':
			derived := p.typ()
			neg := p.consume('n')
			for isDigit(p.peek()) {
				if neg && p.peek() != '0' {
					p.fail() // negative offsets are rejected by c++filt
				}
				p.pos++
			}
			p.expect('_')
			return &ctorVtable{derived: derived, base: p.typ()}
		case 'H':
			return &specialName{prefix: "TLS init function for ", n: p.name(false)}
		case 'W':
			return &specialName{prefix: "TLS wrapper function for ", n: p.name(false)}
		}
		p.fail()
	}
	if c1 == 'G' {
		switch c2 {
		case 'V':
			return &specialName{prefix: "guard variable for ", n: p.name(false)}
		case 'A':
			return &specialName{prefix: "hidden alias for ", n: p.encoding(false)}
		case 'T':
			switch p.next() {
			case 'n':
				return &specialName{prefix: "non-transaction clone for ", n: p.encoding(false)}
			case 't':
				return &specialName{prefix: "transaction clone for ", n: p.encoding(false)}
			}
		}
	}
	p.fail()
	return nil
}

// callOffset parses the rest of h <nv-offset> _ or v <offset> _
// <virtual offset> _, the kind letter having been consumed.
func (p *parser) callOffset(kind byte) {
	switch kind {
	case 'h':
		p.lenientNumber()
	case 'v':
		p.lenientNumber()
		p.expect('_')
		p.lenientNumber()
	default:
		p.fail()
	}
	p.expect('_')
}

// expression parses an <expression> in expression context.
func (p *parser) expression() node {
	saved := p.inExpr
	p.inExpr = true
	n := p.expr()
	p.inExpr = saved
	return n
}

// unresolvedName parses what follows "sr" in an <unresolved-name>:
//
//	<unresolved-type> <base-unresolved-name>
//	N <unresolved-type> <unresolved-qualifier-level>* E <base-unresolved-name>
//	<unresolved-qualifier-level>+ E <base-unresolved-name>
//
// Like c++filt, the N form is parsed as a nested-name type. A source name
// right after "sr" starts the last form; the form of old GCC versions
// with a class name as <unresolved-type> is not supported, because
// c++filt's output for it depends on the context in hard-to-predict ways.
// For the same reason only the last form is accepted in the initializer
// of a new-expression.
func (p *parser) unresolvedName() node {
	if !isDigit(p.peek()) {
		if p.inNewInit > 0 {
			p.fail()
		}
		return p.baseUnresolvedName(p.typ())
	}
	var scope node
	for !p.consume('E') {
		var lvl node = &nameNode{s: p.sourceIdent()}
		if p.peek() == 'I' {
			lvl = &templateNode{n: lvl, args: p.templateArgs()}
		}
		if scope == nil {
			scope = lvl
		} else {
			scope = &qualName{scope: scope, n: lvl}
		}
	}
	return p.baseUnresolvedName(scope)
}

// baseUnresolvedName parses a name and optional template arguments and
// qualifies it with scope. The template arguments apply to the whole
// qualified name, which matters for parenthesization in expressions.
func (p *parser) baseUnresolvedName(scope node) node {
	var n node = &qualName{scope: scope, n: p.unqualifiedName(nil)}
	if p.peek() == 'I' {
		n = &templateNode{n: n, args: p.templateArgs()}
	}
	return n
}

// exprList parses <expression>* up to and including term.
func (p *parser) exprList(term byte) *exprList {
	l := &exprList{}
	for !p.consume(term) {
		l.items = append(l.items, p.expression())
	}
	return l
}

func isNewCast(code string) bool {
	switch code {
	case "dc", "sc", "cc", "rc":
		return true
	}
	return false
}

// expr parses the subset of <expression> that c++filt-compatible output
// is implemented for; anything else fails.
func (p *parser) expr() node {
	p.enter()
	n := p.expr1()
	p.leave()
	return n
}

func (p *parser) expr1() node {
	c, c2 := p.peek(), p.peekAt(1)
	switch {
	case c == 'L':
		return p.exprPrimary()
	case c == 'T':
		return p.templateParam()
	case c == 's' && c2 == 'r':
		p.pos += 2
		return p.unresolvedName()
	case c == 's' && c2 == 'p':
		p.pos += 2
		return &packExpansion{pattern: p.expr()}
	case c == 'f' && c2 == 'p':
		p.pos += 2
		if p.consume('T') {
			return &funcParam{idx: 0}
		}
		return &funcParam{idx: p.compactNumber() + 1}
	case isDigit(c) || (c == 'o' && c2 == 'n'):
		if c == 'o' {
			// Consumed here, "on cv" still parses as a cast, which
			// c++filt cannot print (unlike after "sr" or "dt").
			p.pos += 2
		}
		n := p.unqualifiedName(nil)
		if p.peek() == 'I' {
			n = &templateNode{n: n, args: p.templateArgs()}
		}
		return n
	case (c == 'i' || c == 't') && c2 == 'l':
		p.pos += 2
		l := &initList{}
		if c == 't' {
			l.t = p.typ()
		}
		l.items = p.exprList('E').items
		return l
	}

	op := p.operatorName()
	code := ""
	arity := 0
	switch o := op.(type) {
	case *operatorName:
		code = o.op.code
		arity = o.op.arity
		if code == "st" {
			return &unaryExpr{op: op, arg: p.typ()}
		}
	case *conversionOp:
		arity = 1
	default:
		p.fail()
	}
	switch arity {
	case 0:
		return &nullaryExpr{op: op}
	case 1:
		postfix := false
		if code == "pp" || code == "mm" {
			postfix = !p.consume('_')
		}
		var arg node
		switch {
		case code == "" && p.consume('_'):
			arg = p.exprList('E')
		case code == "sP", code == "li":
			p.fail()
		default:
			arg = p.expr()
		}
		return &unaryExpr{op: op, arg: arg, postfix: postfix}
	case 2:
		var l, r node
		switch {
		case isNewCast(code):
			l = p.typ()
		default:
			l = p.expr()
		}
		switch code {
		case "cl":
			r = p.exprList('E')
		case "dt", "pt":
			if c, c2 := p.peek(), p.peekAt(1); (c == 'g' && c2 == 's') || (c == 's' && c2 == 'r') {
				r = p.expr()
			} else {
				r = p.unqualifiedName(nil)
				if p.peek() == 'I' {
					r = &templateNode{n: r, args: p.templateArgs()}
				}
			}
		default:
			r = p.expr()
		}
		return &binaryExpr{op: op, l: l, r: r}
	case 3:
		if code == "nw" || code == "na" {
			e := &newExpr{op: op, placement: p.exprList('_'), t: p.typ()}
			switch {
			case p.consume('E'):
			case p.peek() == 'p' && p.peekAt(1) == 'i':
				p.pos += 2
				p.inNewInit++
				e.init = p.exprList('E')
				p.inNewInit--
			case p.peek() == 'i' && p.peekAt(1) == 'l':
				e.init = p.expr()
			default:
				p.fail()
			}
			return e
		}
		if code != "qu" {
			p.fail()
		}
		a := p.expr()
		b := p.expr()
		return &trinaryExpr{op: op, a: a, b: b, c: p.expr()}
	}
	p.fail()
	return nil
}
