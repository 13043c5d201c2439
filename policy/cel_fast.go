package policy

import (
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
)

// A condition of the commonest shape, a string field of the request
// compared with a constant (==, !=, startsWith, endsWith, contains), or the
// negation of one, is evaluated in Go: cel-go's interpreter costs about a
// microsecond a condition, on every request, and these shapes are most of
// what policies hold. The shape is read from the checked expression, so
// its meaning is CEL's; anything else runs in CEL.
type fastCond func(in *input) bool

// requestStrings are the string fields a fast condition may read.
var requestStrings = map[string]func(in *input) string{
	"req.method": func(in *input) string { return in.r.Method },
	"req.host":   func(in *input) string { return in.r.Host },
	"req.path":   func(in *input) string { return in.r.URL.Path },
	"req.url":    func(in *input) string { return in.r.URL.RequestURI() },
}

// fastCondition returns the Go form of a checked condition, or nil when it
// has none.
func fastCondition(a *cel.Ast) fastCond {
	return fastExpr(a.NativeRep().Expr())
}

func fastExpr(e ast.Expr) fastCond {
	if e.Kind() != ast.CallKind {
		return nil
	}
	c := e.AsCall()
	args := c.Args()
	if c.FunctionName() == "!_" && len(args) == 1 {
		if f := fastExpr(args[0]); f != nil {
			return func(in *input) bool { return !f(in) }
		}
		return nil
	}
	if len(args) != 1 && len(args) != 2 {
		return nil
	}
	var field, lit ast.Expr
	switch {
	case c.IsMemberFunction() && len(args) == 1:
		field, lit = c.Target(), args[0]
	case !c.IsMemberFunction() && len(args) == 2 && args[1].Kind() == ast.LiteralKind:
		field, lit = args[0], args[1]
	case !c.IsMemberFunction() && len(args) == 2:
		field, lit = args[1], args[0]
	default:
		return nil
	}
	if field.Kind() != ast.IdentKind || lit.Kind() != ast.LiteralKind {
		return nil
	}
	get := requestStrings[field.AsIdent()]
	s, ok := lit.AsLiteral().(types.String)
	if get == nil || !ok {
		return nil
	}
	v := string(s)
	switch name := c.FunctionName(); {
	case name == "startsWith" && c.IsMemberFunction():
		return func(in *input) bool { return strings.HasPrefix(get(in), v) }
	case name == "endsWith" && c.IsMemberFunction():
		return func(in *input) bool { return strings.HasSuffix(get(in), v) }
	case name == "contains" && c.IsMemberFunction():
		return func(in *input) bool { return strings.Contains(get(in), v) }
	case name == "_==_" && !c.IsMemberFunction():
		return func(in *input) bool { return get(in) == v }
	case name == "_!=_" && !c.IsMemberFunction():
		return func(in *input) bool { return get(in) != v }
	}
	return nil
}
