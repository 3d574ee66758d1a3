package demangle

// This file defines the syntax tree built by the parser (parse.go) and
// consumed by the printer (print.go). Substitutions and template
// arguments share nodes, so the tree is in fact a DAG. Nodes are not
// modified after parsing except for a recursion counter used while
// printing; a tree belongs to a single call and is never shared.

// node is any element of a demangled tree: a name, a type, an expression,
// or a whole encoding.
type node interface {
	leafOf() *leaf
}

// leaf is embedded in every node type to implement the node interface.
// It also carries the only printing state kept in nodes.
type leaf struct {
	// printing counts how many times the node is currently being printed
	// (it can be entered again through a substitution). Like c++filt, the
	// printer refuses to enter a node a third time.
	printing uint8
}

func (l *leaf) leafOf() *leaf { return l }

// ---- names ----

// nameNode is an identifier or a fixed piece of text, such as a source
// name, "std", "(anonymous namespace)" or a standard abbreviation.
type nameNode struct {
	leaf
	s string
	// abbrev is set for the standard abbreviations (Sa, Ss, ...), which
	// are not plain identifiers when printed as expressions.
	abbrev bool
}

// builtinNode is a builtin or vendor extended type.
type builtinNode struct {
	leaf
	s    string
	code string // mangled code: "i", "Dn", "DF16_"; "u" for vendor types
}

// qualName is scope::n.
type qualName struct {
	leaf
	scope, n node
}

// templateNode is n<args...>.
type templateNode struct {
	leaf
	n    node
	args []node
}

// taggedName is n[abi:tag].
type taggedName struct {
	leaf
	n   node
	tag string
}

// operatorName is "operator" followed by an operator from the table.
type operatorName struct {
	leaf
	op opInfo
}

// conversionOp is a conversion operator, "operator T", or a cast in an
// expression context.
type conversionOp struct {
	leaf
	t    node
	cast bool // parsed inside an expression: a cast, not a name
}

// literalOp is a literal operator, operator"" suffix.
type literalOp struct {
	leaf
	suffix string
}

// vendorOp is a vendor extended operator: "operator " followed by a name.
type vendorOp struct {
	leaf
	name string
}

// ctorDtorName is a constructor or destructor name; n is the class's
// unqualified name.
type ctorDtorName struct {
	leaf
	dtor bool
	n    string
}

// localName is enc::entity for an entity declared inside a function.
type localName struct {
	leaf
	enc, entity node
}

// defaultArg wraps an entity declared in a default argument:
// {default arg#num}::n.
type defaultArg struct {
	leaf
	num int
	n   node
}

// lambdaName is {lambda(params)#num}.
type lambdaName struct {
	leaf
	params []node
	num    int
}

// unnamedType is {unnamed type#num}.
type unnamedType struct {
	leaf
	num int
}

// bindingName is a structured binding declaration, [a, b, ...].
type bindingName struct {
	leaf
	names []string
}

// cvName is a member function name carrying the cv- and ref-qualifiers of
// the implicit object parameter (from N [<CV-qualifiers>] [<ref-qualifier>]).
type cvName struct {
	leaf
	n     node
	quals []fnQual
}

// ---- encodings and special names ----

// typedName is a function: its name together with its type.
type typedName struct {
	leaf
	name node
	fn   *funcType
}

// specialName is prefix followed by n, e.g. "vtable for " and a type.
type specialName struct {
	leaf
	prefix string
	n      node
}

// ctorVtable is a construction vtable: base-in-derived.
type ctorVtable struct {
	leaf
	derived, base node
}

// cloneName is n [clone suffix].
type cloneName struct {
	leaf
	n      node
	suffix string
}

// ---- types ----

// modKind enumerates the simple type modifiers of modType.
type modKind uint8

const (
	modPointer modKind = iota
	modLRef
	modRRef
	modComplex
	modImaginary
)

// modType is a pointer, reference, complex or imaginary type.
type modType struct {
	leaf
	kind  modKind
	inner node
}

// cvType is a cv-qualified (non-function) type.
type cvType struct {
	leaf
	// cv holds the qualifier letters K, V, r innermost (last mangled)
	// first, which is the order c++filt prints them in.
	cv    string
	inner node
}

// vendorQual is a type with a vendor extended qualifier (U <name>).
type vendorQual struct {
	leaf
	inner node
	qual  node
}

// ptrMemType is a pointer to member: mem cls::*.
type ptrMemType struct {
	leaf
	cls, mem node
}

// fnQual is one qualifier printed after a function's parameter list:
// " const", " &&", " noexcept", " noexcept(expr)", " throw(types)".
type fnQual struct {
	text string
	// For noexcept(expr) and throw(types): the parenthesized arguments.
	args  []node
	paren bool
}

// funcType is a function type. ret is nil when the return type is not
// encoded (non-template functions).
type funcType struct {
	leaf
	ret    node
	params []node
	// quals are printed after the parameter list, in this order.
	quals []fnQual
}

// arrayType is elem [dim]; dim is nil for an array of unknown bound.
type arrayType struct {
	leaf
	dim  node
	elem node
}

// vectorType is a vendor vector type: elem __vector(dim).
type vectorType struct {
	leaf
	dim  node
	elem node
}

// templateParam is a reference to the idx'th template argument of the
// enclosing template.
type templateParam struct {
	leaf
	idx int
}

// packExpansion is a pack expansion of pattern.
type packExpansion struct {
	leaf
	pattern node
}

// argPack is a template argument pack (J ... E).
type argPack struct {
	leaf
	args []node
}

// decltypeNode is decltype (expr).
type decltypeNode struct {
	leaf
	expr node
}

// ---- expressions ----

// literal is a literal of type t; val is its mangled text.
type literal struct {
	leaf
	t   node
	val string
	neg bool
}

// funcParam is a reference to a function parameter: this (0) or
// {parm#idx}.
type funcParam struct {
	leaf
	idx int
}

// exprList is a parenthesized or braced list of expressions.
type exprList struct {
	leaf
	items []node
}

// unaryExpr is op arg (or arg op when postfix).
type unaryExpr struct {
	leaf
	op      node // *operatorName, *conversionOp (cast) or *vendorOp
	arg     node
	postfix bool
}

// binaryExpr is l op r, including calls, member access and named casts.
type binaryExpr struct {
	leaf
	op   node
	l, r node
}

// trinaryExpr is the conditional operator, new expressions and folds.
type trinaryExpr struct {
	leaf
	op      node
	a, b, c node
}

// newExpr is a new-expression: new (placement) T(init).
type newExpr struct {
	leaf
	op        node
	placement *exprList
	t         node
	init      node // nil, *exprList or *initList
}

// nullaryExpr is an operator without operands (throw).
type nullaryExpr struct {
	leaf
	op node
}

// initList is [t]{items...}.
type initList struct {
	leaf
	t     node // nil for an untyped braced list
	items []node
}

// opInfo describes one operator from the ABI's operator-name table.
type opInfo struct {
	code  string
	name  string // as printed; may end in a space for keywords
	arity int
}

// lookupOperator returns the operator-name table entry for a two-letter
// code.
func lookupOperator(code string) (opInfo, bool) {
	name, arity := "", 2
	switch code {
	case "aN":
		name = "&="
	case "aS":
		name = "="
	case "aa":
		name = "&&"
	case "ad":
		name, arity = "&", 1
	case "an":
		name = "&"
	case "at", "az":
		name, arity = "alignof ", 1
	case "aw":
		name, arity = "co_await ", 1
	case "cc":
		name = "const_cast"
	case "cl":
		name = "()"
	case "cm":
		name = ","
	case "co":
		name, arity = "~", 1
	case "dV":
		name = "/="
	case "da":
		name, arity = "delete[] ", 1
	case "dc":
		name = "dynamic_cast"
	case "de":
		name, arity = "*", 1
	case "dl":
		name, arity = "delete ", 1
	case "ds":
		name = ".*"
	case "dt":
		name = "."
	case "dv":
		name = "/"
	case "eO":
		name = "^="
	case "eo":
		name = "^"
	case "eq":
		name = "=="
	case "ge":
		name = ">="
	case "gs":
		name, arity = "::", 1
	case "gt":
		name = ">"
	case "ix":
		name = "[]"
	case "lS":
		name = "<<="
	case "le":
		name = "<="
	case "li":
		name, arity = "operator\"\" ", 1
	case "ls":
		name = "<<"
	case "lt":
		name = "<"
	case "mI":
		name = "-="
	case "mL":
		name = "*="
	case "mi":
		name = "-"
	case "ml":
		name = "*"
	case "mm":
		name, arity = "--", 1
	case "na":
		name, arity = "new[] ", 3
	case "ne":
		name = "!="
	case "ng":
		name, arity = "-", 1
	case "nt":
		name, arity = "!", 1
	case "nw":
		name, arity = "new ", 3
	case "oR":
		name = "|="
	case "oo":
		name = "||"
	case "or":
		name = "|"
	case "pL":
		name = "+="
	case "pl":
		name = "+"
	case "pm":
		name = "->*"
	case "pp":
		name, arity = "++", 1
	case "ps":
		name, arity = "+", 1
	case "pt":
		name = "->"
	case "qu":
		name, arity = "?", 3
	case "rM":
		name = "%="
	case "rS":
		name = ">>="
	case "rc":
		name = "reinterpret_cast"
	case "rm":
		name = "%"
	case "rs":
		name = ">>"
	case "sP", "sZ":
		name, arity = "sizeof...", 1
	case "sc":
		name = "static_cast"
	case "ss":
		name = "<=>"
	case "st", "sz":
		name, arity = "sizeof ", 1
	case "tr":
		name, arity = "throw", 0
	case "tw":
		name, arity = "throw ", 1
	default:
		return opInfo{}, false
	}
	return opInfo{code: code, name: name, arity: arity}, true
}

// builtinType returns the name of a single-letter builtin type code.
func builtinType(c byte) string {
	switch c {
	case 'v':
		return "void"
	case 'w':
		return "wchar_t"
	case 'b':
		return "bool"
	case 'c':
		return "char"
	case 'a':
		return "signed char"
	case 'h':
		return "unsigned char"
	case 's':
		return "short"
	case 't':
		return "unsigned short"
	case 'i':
		return "int"
	case 'j':
		return "unsigned int"
	case 'l':
		return "long"
	case 'm':
		return "unsigned long"
	case 'x':
		return "long long"
	case 'y':
		return "unsigned long long"
	case 'n':
		return "__int128"
	case 'o':
		return "unsigned __int128"
	case 'f':
		return "float"
	case 'd':
		return "double"
	case 'e':
		return "long double"
	case 'g':
		return "__float128"
	case 'z':
		return "..."
	}
	return ""
}

// builtinD returns the name of a two-letter builtin type code D<c>
// (other than DF<N>_, which is handled by the parser).
func builtinD(c byte) string {
	switch c {
	case 'd':
		return "decimal64"
	case 'e':
		return "decimal128"
	case 'f':
		return "decimal32"
	case 'h':
		return "half"
	case 'i':
		return "char32_t"
	case 's':
		return "char16_t"
	case 'u':
		return "char8_t"
	case 'a':
		return "auto"
	case 'c':
		return "decltype(auto)"
	case 'n':
		return "decltype(nullptr)"
	}
	return ""
}

// stdSub returns the expansion of the standard abbreviation S<c> as
// c++filt prints it, and the unqualified class name used for constructor
// and destructor names. St (the std:: prefix) is handled by the parser.
func stdSub(c byte) (full, base string) {
	switch c {
	case 'a':
		return "std::allocator", "allocator"
	case 'b':
		return "std::basic_string", "basic_string"
	case 's':
		return "std::basic_string<char, std::char_traits<char>, std::allocator<char> >", "basic_string"
	case 'i':
		return "std::basic_istream<char, std::char_traits<char> >", "basic_istream"
	case 'o':
		return "std::basic_ostream<char, std::char_traits<char> >", "basic_ostream"
	case 'd':
		return "std::basic_iostream<char, std::char_traits<char> >", "basic_iostream"
	}
	return "", ""
}
