package detector

import (
	"bytes"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
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

// scrapeConcurrently formats the parts of sc on one goroutine each, started last part first,
// and returns them concatenated in order.
func scrapeConcurrently(sc Scrape) []byte {
	parts := make([][]byte, sc.Parts())
	var wg sync.WaitGroup
	for i := len(parts) - 1; i >= 0; i-- {
		wg.Go(func() { parts[i] = sc.AppendPart(nil, i) })
	}
	wg.Wait()
	return bytes.Join(parts, nil)
}

// TestScrapeParts: however the exposition is cut, and in whatever order its parts are formatted,
// their concatenation is the exposition of a scrape in one part, which walks the families and
// shards in the order WriteScores always has (TestScoresGolden holds its bytes).
func TestScrapeParts(t *testing.T) {
	s := newTestStore(t, testOptions())
	s.clock = time.UnixMilli(1_700_000_000_000).Add(72 * time.Hour)
	require.NoError(t, s.Append(goldenInput()))
	for _, b := range benchBatches(3000) {
		require.NoError(t, s.Append(b))
	}
	n := s.Len()
	whole := s.Scrape(1 << 30)
	require.Equal(t, len(families), whole.Parts())
	want := whole.AppendPart(nil, 0)
	for i := 1; i < whole.Parts(); i++ {
		want = whole.AppendPart(want, i)
	}
	var buf bytes.Buffer
	require.NoError(t, s.WriteScores(&buf))
	require.Equal(t, string(want), buf.String(), "WriteScores")
	require.Equal(t, 6*(n-1)+6*2, strings.Count(string(want), "\n"), "a line per live series and family, and the headers")

	for _, tc := range []struct {
		name       string
		partSeries int
		ranges     int
	}{
		{"a series per part", 1, n},
		{"parts within and across shards", 20, (n + 19) / 20},
		{"uneven ranges", 700, (n + 699) / 700},
		{"default", 0, (n + DefaultPartSeries - 1) / DefaultPartSeries},
		{"negative is default", -1, (n + DefaultPartSeries - 1) / DefaultPartSeries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := s.Scrape(tc.partSeries)
			require.Equal(t, len(families)*tc.ranges, sc.Parts())
			require.Equal(t, string(want), string(scrapeConcurrently(sc)))
		})
	}
}

// TestScrapeEmpty: an empty store's exposition is the families' headers, in any number of parts.
func TestScrapeEmpty(t *testing.T) {
	s := newTestStore(t, testOptions())
	sc := s.Scrape(1)
	require.Equal(t, len(families), sc.Parts())
	out := string(scrapeConcurrently(sc))
	require.Equal(t, 2*len(families), strings.Count(out, "\n"))
	for _, f := range families {
		require.Contains(t, out, "# HELP "+f.name+" ")
		require.Contains(t, out, "# TYPE "+f.name+" gauge\n")
	}
	var buf bytes.Buffer
	require.NoError(t, s.WriteScores(&buf))
	require.Equal(t, out, buf.String())
}

// TestScrapeStaleCutoff: the wall clock is read once per scrape, so that a part formatted after
// a series went stale still shows it, as the scrape's other parts do.
func TestScrapeStaleCutoff(t *testing.T) {
	s := newTestStore(t, testOptions())
	for _, b := range benchBatches(500) {
		require.NoError(t, s.Append(b))
	}
	var want bytes.Buffer
	require.NoError(t, s.WriteScores(&want))
	require.Equal(t, 6*500+12, strings.Count(want.String(), "\n"))
	sc := s.Scrape(100)
	s.clock = s.clock.Add(time.Hour) // every series is stale now
	require.Equal(t, want.String(), string(scrapeConcurrently(sc)))
	require.Equal(t, 12, strings.Count(string(scrapeConcurrently(s.Scrape(100))), "\n"), "a new scrape hides them")
}

// TestScrapeNewSeriesWait: the parts cut the shards' slots as they were when the scrape began,
// so that series added since, which take slots inside a part's run and after it, are in no part
// of that scrape (were they in some, a family could show a series twice or skip one), and in
// the next.
func TestScrapeNewSeriesWait(t *testing.T) {
	s := newTestStore(t, testOptions())
	bs := benchBatches(4000)
	require.NoError(t, s.Append(bs[0]))
	var want bytes.Buffer
	require.NoError(t, s.WriteScores(&want))
	sc := s.Scrape(300)
	require.NoError(t, s.Append(bs[1]))
	require.Equal(t, want.String(), string(scrapeConcurrently(sc)))
	require.Equal(t, 6*4000+12, strings.Count(string(scrapeConcurrently(s.Scrape(300))), "\n"))
}

// TestScrapeWhileAppending: scrapes, their parts formatted concurrently, beside ingestion of
// new samples and new series (go test -race checks the locking).
func TestScrapeWhileAppending(t *testing.T) {
	s := newTestStore(t, testOptions())
	bs := benchBatches(3000) // a batch of 2000 known series, another of 1000 that arrive during the scrapes
	for _, b := range bs[:1] {
		require.NoError(t, s.Append(b))
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			for _, b := range bs {
				select {
				case <-done:
					return
				default:
				}
				if err := s.Append(b); err != nil {
					panic(err)
				}
			}
			advance(bs)
		}
	})
	defer wg.Wait()
	defer close(done)
	for range 8 {
		out := scrapeConcurrently(s.Scrape(97))
		p := expfmt.NewTextParser(model.UTF8Validation)
		mfs, err := p.TextToMetricFamilies(bytes.NewReader(out))
		require.NoError(t, err)
		require.Len(t, mfs, len(families))
		for _, f := range families {
			require.GreaterOrEqual(t, len(mfs[f.name].GetMetric()), 2000, f.name)
			require.LessOrEqual(t, len(mfs[f.name].GetMetric()), 3000, f.name)
		}
	}
}

// TestAppendValue checks the integer shortcut against strconv, at its edges.
func TestAppendValue(t *testing.T) {
	for _, v := range []float64{0, math.Copysign(0, -1), 1, -1, 60, 999_999, -999_999, 1e6, -1e6, 1_234_567,
		0.5, -0.25, 1e-7, 123456.5, 1e21, math.MaxInt64, math.MinInt64, math.NaN(), math.Inf(1), math.Inf(-1),
		math.SmallestNonzeroFloat64, math.Nextafter(1e6, 0), math.Nextafter(1, 2)} {
		require.Equal(t, strconv.FormatFloat(v, 'g', -1, 64), string(appendValue(nil, v)), "%v", v)
	}
}

// TestAppendPlainLabels checks the word-copying label loop against the general one, for strings
// of every length around the word size and the one-byte length limit, first, last and alone,
// and with what the buffer already holds kept.
func TestAppendPlainLabels(t *testing.T) {
	lengths := []int{0, 1, 7, 15, 16, 17, 31, 32, 33, 100, 254, 255, 300}
	str := func(n int, c byte) string { return strings.Repeat(string(c), n) }
	var sets [][]batch.Label
	for _, n := range lengths {
		for _, m := range lengths {
			if n == 0 {
				continue // names are not empty
			}
			sets = append(sets,
				[]batch.Label{{Name: str(n, 'a'), Value: str(m, 'v')}},
				[]batch.Label{{Name: "__name__", Value: str(m, 'm')}, {Name: str(n, 'b'), Value: str(m, 'w')}, {Name: "z", Value: "1"}},
				[]batch.Label{{Name: "a", Value: "x"}, {Name: str(n, 'q'), Value: str(m, 'y')}},
			)
		}
	}
	for _, ls := range sets {
		data := string(batch.AppendEncoded(nil, ls))
		wantB, wantM := appendEncodedLabels([]byte("prefix{"), data, "", false)
		gotB, gotM := appendPlainLabels([]byte("prefix{"), data)
		require.Equal(t, string(wantB), string(gotB))
		require.Equal(t, wantM, gotM)
	}
}
