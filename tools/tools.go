//go:build tools

// Package tools pins the development tools (linters, benchmark comparison) in a module of their
// own, so that they never become dependencies of the product.
package tools

import (
	_ "golang.org/x/perf/cmd/benchstat"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
