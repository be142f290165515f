package detector

import (
	"bytes"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenInput is a small fixed input: a daily gauge with a spike at the end, a counter, a series
// whose labels collide with ours or need escaping, and one that ended with a stale marker.
func goldenInput() *batch.Batch {
	const step = 5 * time.Minute
	const n = 3 * 24 * 12 // three days
	start := int64(1_700_000_000_000)
	daily := func(i int) float64 {
		v := 100 + 20*math.Sin(2*math.Pi*float64(i)/(24*12)) + float64(i%7)
		if i == n-1 {
			v += 80
		}
		return v
	}
	counter := func(i int) float64 { return float64(i) * 300 * (5 + float64(i%3)) }
	flat := func(int) float64 { return 3 }
	stale := ramp(n, start, step, flat)
	stale[n-1].V = math.Float64frombits(0x7ff0000000000002)
	return &batch.Batch{Series: []batch.Series{
		series(batch.Gauge, ramp(n, start, step, daily), "__name__", "http_inflight", "instance", "a:9100", "job", "web"),
		series(batch.Counter, ramp(n, start, step, counter), "__name__", "http_requests_total", "code", "200", "job", "web"),
		series(batch.Gauge, ramp(n, start, step, flat), "__name__", "weird", "anomaly_metric", "theirs", "path", `C:\dir "x"`),
		series(batch.Gauge, stale, "__name__", "gone", "job", "web"),
	}}
}

func TestScoresGolden(t *testing.T) {
	s := newTestStore(t, testOptions())
	s.clock = time.UnixMilli(1_700_000_000_000).Add(72 * time.Hour)
	require.NoError(t, s.Append(goldenInput()))
	var buf bytes.Buffer
	require.NoError(t, s.WriteScores(&buf))
	out := buf.Bytes()

	golden := filepath.Join("testdata", "scores.golden")
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		require.NoError(t, os.WriteFile(golden, out, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err, "run go test ./detector -run TestScoresGolden -update to create it")
	require.Equal(t, string(want), string(out), "/scores changed; if on purpose, rerun with -update")

	// Prometheus's own parser reads it, with the families and series we expect.
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(out))
	require.NoError(t, err)
	require.Len(t, mfs, len(families))
	for _, f := range families {
		require.Len(t, mfs[f.name].GetMetric(), 3, f.name) // the stale series is gone
	}
	require.NotContains(t, string(out), `anomaly_metric="gone"`)

	// promtool, the operator's linter, finds nothing to say.
	promtool, err := exec.LookPath("promtool")
	if err != nil && testing.Short() {
		t.Log("promtool not installed; its check is left to the full run")
		return
	}
	require.NoError(t, err, "promtool is needed: apt-get install -y prometheus (make test-deps)")
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(out)
	res, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics: %s", res)
	require.Empty(t, strings.TrimSpace(string(res)))
}
