//go:build tools

// Package prometheus3 pins the Prometheus 3 server (github.com/prometheus/prometheus v0.315.0,
// Prometheus 3.15) that the remote-write 2.0 end-to-end test starts (e2e/prometheus3_test.go).
// Debian's Prometheus speaks remote write 1.0 only. It is a module of its own, apart from the
// product's go.mod and tools/go.mod, because Prometheus brings over 230 modules. `make test`
// builds it into .bin/prometheus3 with -tags remove_all_sd (no service discovery but static
// and file, which keeps the cloud SDKs out of the binary).
package prometheus3

import _ "github.com/prometheus/prometheus/cmd/prometheus"
