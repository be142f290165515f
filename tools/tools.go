//go:build tools

// Package tools pins the development tools (linters, benchmark comparison, the jsonnet toolchain
// and the mixin linters) in a module of their own, so that they never become dependencies of the
// product.
package tools

import (
	_ "github.com/google/go-jsonnet/cmd/jsonnet"
	_ "github.com/google/go-jsonnet/cmd/jsonnet-lint"
	_ "github.com/google/go-jsonnet/cmd/jsonnetfmt"
	_ "github.com/grafana/dashboard-linter"
	_ "github.com/monitoring-mixins/mixtool/cmd/mixtool"
	_ "golang.org/x/perf/cmd/benchstat"
	_ "honnef.co/go/tools/cmd/staticcheck"
)
