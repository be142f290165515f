package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/backtest"
)

// fixedScores is a tiny corpus with made-up scores, for the report's layout: file i of the corpus
// has 40 rows a minute apart, and scores that detect its window at different delays, with false
// positives in between.
func fixedScores(t *testing.T) *backtest.Evaluation {
	t.Helper()
	files := []backtest.CorpusFile{
		{Key: "a/one.csv", Category: "a", Windows: []backtest.Window{{Start: 20 * 60000, End: 29 * 60000}}},
		{Key: "a/two.csv", Category: "a", Windows: []backtest.Window{{Start: 10 * 60000, End: 14 * 60000}, {Start: 30 * 60000, End: 34 * 60000}}},
		{Key: "b/quiet.csv", Category: "b"},
	}
	scores := map[string]map[int]float64{
		"a/one.csv":   {20: 2.5, 25: 3, 35: 1.2},
		"a/two.csv":   {8: 1.5, 12: 2, 33: 0.8},
		"b/quiet.csv": {5: 1.1, 6: 0.9, 7: 4},
	}
	ev, err := backtest.Evaluate(files, 2, func(f backtest.CorpusFile) ([]int64, []float64, error) {
		times := make([]int64, 40)
		s := make([]float64, 40)
		for i := range times {
			times[i] = int64(i) * 60000
		}
		for i, v := range scores[f.Key] {
			s[i] = v
		}
		s[39] = math.NaN() // a skipped row
		return times, s, nil
	})
	require.NoError(t, err)
	return ev
}

func TestEvalReportGolden(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verbose bool
	}{
		{"eval_report", false},
		{"eval_report_verbose", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			require.NoError(t, writeReport(&buf, fixedScores(t), tc.verbose, 1500*time.Millisecond))
			golden := filepath.Join("testdata", tc.name+".golden")
			if *update {
				require.NoError(t, os.WriteFile(golden, buf.Bytes(), 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			require.Equal(t, string(want), buf.String())
		})
	}
}

// synthCorpus writes a NAB-layout corpus: per file, two weeks of five-minute samples of a daily
// wave, and in the files with a window, a level shift of ten times the wave's amplitude inside it.
func synthCorpus(t *testing.T) (data, windows string) {
	t.Helper()
	dir := t.TempDir()
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	const n = 14 * 288
	ws := map[string][2]int{"cloud/cpu.csv": {10 * 288, 10*288 + 100}, "cloud/net-in.csv": {12 * 288, 12*288 + 50}, "quiet/flat.csv": {-1, -1}}
	var js []string
	for key, w := range ws {
		var b strings.Builder
		b.WriteString("timestamp,value\n")
		for i := range n {
			v := 50 + 10*math.Sin(2*math.Pi*float64(i)/288)
			if w[0] >= 0 && i >= w[0]+10 && i < w[0]+40 {
				v += 100
			}
			fmt.Fprintf(&b, "%s,%.3f\n", t0.Add(time.Duration(i)*5*time.Minute).Format("2006-01-02 15:04:05"), v)
		}
		writeFile(t, dir, filepath.Join("data", key), b.String())
		if w[0] < 0 {
			js = append(js, fmt.Sprintf("%q: []", key))
			continue
		}
		f := "2006-01-02 15:04:05.000000"
		js = append(js, fmt.Sprintf("%q: [[%q, %q]]", key, t0.Add(time.Duration(w[0])*5*time.Minute).Format(f), t0.Add(time.Duration(w[1])*5*time.Minute).Format(f)))
	}
	windows = writeFile(t, dir, "windows.json", "{"+strings.Join(js, ",\n")+"}")
	return filepath.Join(dir, "data"), windows
}

func TestEvalCommand(t *testing.T) {
	data, windows := synthCorpus(t)
	dir := t.TempDir()
	missing := writeFile(t, dir, "missing.json", `{"cloud/cpu.csv": []}`)
	broken := writeFile(t, dir, "broken.json", `{"cloud/cpu.csv": [["x", "y"]]}`)
	outside := writeFile(t, dir, "outside.json", `{"cloud/cpu.csv": [["2030-01-01 00:00:00", "2030-01-02 00:00:00"]], "cloud/net-in.csv": [], "quiet/flat.csv": []}`)
	onlyCPU := writeFile(t, dir, "only.yml", "rules:\n  - selector: '{__name__=\"cpu\"}'\n")
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		out    []string
		stderr string
	}{
		{
			name: "table",
			args: []string{"--data", data, "--windows", windows},
			out:  []string{"3 files, 2 windows", "profile", "standard", "reward_low_FP_rate", "reward_low_FN_rate", "at threshold 1.0:", "cloud", "quiet", "total"},
		},
		{
			name: "verbose",
			args: []string{"--data", data, "--windows", windows, "--verbose"},
			out:  []string{"  cpu.csv", "  net-in.csv", "  flat.csv"},
		},
		{name: "file without windows", args: []string{"--data", data, "--windows", missing}, code: 1, stderr: "cloud/net-in.csv has no entry in the windows"},
		{name: "unreadable windows", args: []string{"--data", data, "--windows", broken}, code: 1, stderr: `broken.json: windows of cloud/cpu.csv: timestamp "x"`},
		{name: "window beyond the data", args: []string{"--data", data, "--windows", outside}, code: 1, stderr: "cloud/cpu.csv: window"},
		{name: "empty corpus", args: []string{"--data", dir, "--windows", windows}, code: 1, stderr: "no <category>/<file>.csv in"},
		{name: "a file no rule scores", args: []string{"--data", data, "--windows", windows, "--config", onlyCPU}, code: 1, stderr: `no rule of the configuration matches {__name__="net_in"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runTool(t, "", append([]string{"eval"}, tc.args...)...)
			require.Equal(t, tc.code, code, errs)
			require.Contains(t, errs, tc.stderr)
			for _, s := range tc.out {
				require.Contains(t, out, s)
			}
		})
	}
}
