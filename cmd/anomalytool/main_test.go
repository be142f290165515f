package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// runTool runs the command line as a user would, with stdin and captured stdout and stderr.
func runTool(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(context.Background(), args, stdio{in: strings.NewReader(stdin), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
	require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	return p
}

func readCSV(t *testing.T, p string) [][]string {
	t.Helper()
	f, err := os.Open(p)
	require.NoError(t, err)
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	require.NoError(t, err)
	return recs
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", "rules:\n  - name: api\n    selector: '{job=\"api\"}'\n    sensitivity: 2\n")
	empty := writeFile(t, dir, "empty.yml", "")
	typo := writeFile(t, dir, "typo.yml", "rules:\n  - name: api\n    sensitivty: 2\n")
	missing := filepath.Join(dir, "missing.yml")
	for _, tc := range []struct {
		name     string
		files    []string
		code     int
		out, err []string
		notOut   []string
	}{
		{name: "valid", files: []string{good, empty}, out: []string{good + ": SUCCESS\n", empty + ": SUCCESS\n"}},
		{name: "typo names line and field", files: []string{typo}, code: 1, err: []string{typo + ": FAILED: line 3", "sensitivty"}},
		{name: "missing file", files: []string{missing}, code: 1, err: []string{missing + ": FAILED:", "no such file"}},
		{
			name: "every file is checked", files: []string{typo, good, missing}, code: 1,
			out: []string{good + ": SUCCESS"}, err: []string{typo + ": FAILED", missing + ": FAILED"},
			notOut: []string{typo, missing},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runTool(t, "", append([]string{"check", "config"}, tc.files...)...)
			require.Equal(t, tc.code, code, "stderr: %s", errs)
			for _, s := range tc.out {
				require.Contains(t, out, s)
			}
			for _, s := range tc.err {
				require.Contains(t, errs, s)
			}
			for _, s := range tc.notOut {
				require.NotContains(t, out, s)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		err  string
	}{
		{"check config without files", []string{"check", "config"}, "required argument"},
		{"backtest without a source", []string{"backtest"}, "give --input"},
		{"both sources", []string{"backtest", "--input", "x.csv", "--prometheus.url", "http://p"}, "exclude each other"},
		{"query flags with a CSV", []string{"backtest", "--input", "x.csv", "--query", "up"}, "go with --prometheus.url"},
		{"prometheus without query", []string{"backtest", "--prometheus.url", "http://p"}, "needs --query and --start"},
		{"output dir with a CSV", []string{"backtest", "--input", "x.csv", "--output-dir", "d"}, "go with --prometheus.url"},
		{"output with a query", []string{"backtest", "--prometheus.url", "http://p", "--query", "up", "--start", "0", "--output", "o.csv"}, "go with --input"},
		{"bad type", []string{"backtest", "--input", "x.csv", "--type", "histogram"}, "enum value must be one of"},
		{"eval without data", []string{"eval", "--windows", "w.json"}, "required flag(s) '--data' not provided"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runTool(t, "", tc.args...)
			require.Equal(t, 1, code)
			require.Contains(t, errs, tc.err)
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		out  string
	}{
		{"no command shows usage", nil, "usage: anomalytool"},
		{"help", []string{"--help"}, "backtest"},
		{"command help", []string{"eval", "--help"}, "--windows=FILE.json"},
		{"version", []string{"--version"}, "anomalytool, version"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runTool(t, "", tc.args...)
			require.Equal(t, 0, code)
			require.Contains(t, out+errs, tc.out)
		})
	}
}

func TestMetricNameFromFile(t *testing.T) {
	for in, want := range map[string]string{
		"data/realAdExchange/exchange-2_cpc_results.csv": "exchange_2_cpc_results",
		"http_requests_total.csv":                        "http_requests_total",
		"2xx.csv":                                        "_2xx",
		"node:cpu:rate5m":                                "node:cpu:rate5m",
		"-":                                              "",
	} {
		require.Equal(t, want, metricNameFromFile(in), in)
	}
}
