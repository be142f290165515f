package main

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// seasonalCSV is three days at five-minute steps of a daily wave with a spike late on the last day,
// in the given timestamp form, with one duplicated timestamp.
func seasonalCSV(form func(time.Time) string) string {
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 3 * 288 {
		t := t0.Add(time.Duration(i) * 5 * time.Minute)
		v := 100 + 20*math.Sin(2*math.Pi*float64(i)/288)
		if i == 3*288-20 {
			v += 500
		}
		fmt.Fprintf(&b, "%s,%g\n", form(t), v)
		if i == 400 {
			fmt.Fprintf(&b, "%s,%g\n", form(t), v)
		}
	}
	return b.String()
}

// counterCSV is seasonalCSV as a counter: its per-second rate is the daily wave, with a burst.
func counterCSV() string {
	var b strings.Builder
	b.WriteString("timestamp,value\n")
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	total := 0.0
	for i := range 3 * 288 {
		rate := 100 + 20*math.Sin(2*math.Pi*float64(i)/288)
		if i == 3*288-20 {
			rate += 500
		}
		total += rate * 300
		t := t0.Add(time.Duration(i) * 5 * time.Minute)
		fmt.Fprintf(&b, "%d,%g\n", t.Unix(), total)
		if i == 400 {
			fmt.Fprintf(&b, "%d,%g\n", t.Unix(), total)
		}
	}
	return b.String()
}

func TestBacktestCSV(t *testing.T) {
	dir := t.TempDir()
	plain := writeFile(t, dir, "temperature.csv", seasonalCSV(func(t time.Time) string { return t.Format("2006-01-02 15:04:05") }))
	rfc := writeFile(t, dir, "rfc.csv", seasonalCSV(func(t time.Time) string { return t.Format(time.RFC3339) }))
	unix := writeFile(t, dir, "unix.csv", seasonalCSV(func(t time.Time) string { return fmt.Sprintf("%d.000", t.Unix()) }))
	cfg := writeFile(t, dir, "cfg.yml", "rules:\n  - name: temps\n    selector: '{__name__=\"temperature\"}'\n    sensitivity: 2\n  - name: rest\n")
	onlyTemps := writeFile(t, dir, "only.yml", "rules:\n  - name: temps\n    selector: '{__name__=\"temperature\"}'\n")
	jobs := writeFile(t, dir, "jobs_total.csv", counterCSV())
	bad := writeFile(t, dir, "bad.csv", "timestamp,value\n2024-01-01 00:00:00,1\n2024-01-01 00:05:00,x\n")
	const rows = 3*288 + 1

	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		stderr  string
		skipped []int // data rows (0-based) with empty result fields
	}{
		{name: "plain timestamps, default config", args: []string{"--input", plain}, stderr: `{__name__="temperature"} as a gauge, rule "default"`, skipped: []int{401}},
		{name: "RFC 3339", args: []string{"--input", rfc}, skipped: []int{401}},
		{name: "Unix seconds", args: []string{"--input", unix}, skipped: []int{401}},
		{name: "rule chosen by the file's name", args: []string{"--input", plain, "--config", cfg}, stderr: `rule "temps"`, skipped: []int{401}},
		{name: "rule chosen by --metric", args: []string{"--input", plain, "--config", cfg, "--metric", "other"}, stderr: `{__name__="other"} as a gauge, rule "rest"`, skipped: []int{401}},
		{name: "counter by naming convention", args: []string{"--input", jobs}, stderr: `{__name__="jobs_total"} as a counter`, skipped: []int{0, 401}},
		{name: "counter forced", args: []string{"--input", jobs, "--metric", "jobs", "--type", "counter"}, stderr: "as a counter", skipped: []int{0, 401}},
		{name: "no rule matches", args: []string{"--input", plain, "--config", onlyTemps, "--metric", "other"}, code: 1, stderr: `no rule of the configuration matches {__name__="other"}`},
		{name: "bad row", args: []string{"--input", bad}, code: 1, stderr: `bad.csv: line 3: value "x" is not a number`},
		{name: "missing input", args: []string{"--input", filepath.Join(dir, "nope.csv")}, code: 1, stderr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out.csv")
			code, _, errs := runTool(t, "", append([]string{"backtest", "--output", out}, tc.args...)...)
			require.Equal(t, tc.code, code, errs)
			require.Contains(t, errs, tc.stderr)
			if tc.code != 0 {
				return
			}
			recs := readCSV(t, out)
			require.Equal(t, []string{"timestamp", "value", "score", "expected", "lower", "upper", "learning"}, recs[0])
			require.Len(t, recs, rows+1)
			skipped := map[int]bool{}
			for _, i := range tc.skipped {
				skipped[i] = true
			}
			for i, rec := range recs[1:] {
				require.Equal(t, skipped[i], rec[2] == "", "row %d: %q", i, rec)
			}
			// Past the learning period, the spike stands out.
			spike := recs[1+3*288-20+1]
			require.Equal(t, "false", spike[6])
			require.Greater(t, parseFloat(t, spike[2]), 1.0, "spike %q", spike)
		})
	}
}

func parseFloat(t *testing.T, s string) float64 {
	t.Helper()
	var f float64
	_, err := fmt.Sscan(s, &f)
	require.NoError(t, err)
	return f
}

func TestBacktestStdinStdout(t *testing.T) {
	in := "timestamp,value\n1700000000,1\n1700000060,2\n1700000060,3\n"
	for _, args := range [][]string{{"--input", "-", "--output", "-"}, {"--input=-"}} {
		code, out, errs := runTool(t, in, append([]string{"backtest"}, args...)...)
		require.Equal(t, 0, code, errs)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 4)
		require.Equal(t, "timestamp,value,score,expected,lower,upper,learning", lines[0])
		require.True(t, strings.HasPrefix(lines[1], "1700000000,1,"))
		require.Equal(t, "1700000060,3,,,,,", lines[3])
		require.Contains(t, errs, "-: {} as a gauge")
		require.Contains(t, errs, "3 rows: 2 scored")
		require.Contains(t, errs, "1 duplicate")
	}
}

func TestBacktestCSVPlot(t *testing.T) {
	dir := t.TempDir()
	in := writeFile(t, dir, "temperature.csv", seasonalCSV(func(t time.Time) string { return t.Format(time.RFC3339) }))
	svg := filepath.Join(dir, "plot.svg")
	code, _, errs := runTool(t, "", "backtest", "--input", in, "--output", filepath.Join(dir, "out.csv"), "--plot", svg)
	require.Equal(t, 0, code, errs)
	el := svgElements(t, svg)
	require.Equal(t, 1, el["g.series"])
	require.Equal(t, 1, el["path.band"])
	require.Equal(t, 1, el["polyline.expected"])
	require.Equal(t, 1, el["polyline.observed"])
	require.GreaterOrEqual(t, el["circle.anomaly"], 1)
}
