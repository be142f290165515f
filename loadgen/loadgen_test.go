package loadgen

import (
	"context"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	writev2 "github.com/prometheus/prometheus/prompb/io/prometheus/write/v2"
	"github.com/stretchr/testify/require"
)

// received is one series as a receiver decoded it.
type received struct {
	labels  []label
	t       []int64
	v       []float64
	typ     writev2.Metadata_MetricType
	help    string
	updates int // requests that carried it
}

// sink is a receiver that decodes every request with Prometheus's generated types, the reference
// the hand-written encoding must agree with.
type sink struct {
	t      *testing.T
	mu     sync.Mutex
	series map[string]*received
	ctypes map[string]int
	reply  func(w http.ResponseWriter, samples int) // nil: 204
}

func newSink(t *testing.T) (*sink, *httptest.Server) {
	s := &sink{t: t, series: map[string]*received{}, ctypes: map[string]int{}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	require.NoError(s.t, err)
	raw, err := snappy.Decode(nil, body)
	require.NoError(s.t, err)
	require.Equal(s.t, "snappy", r.Header.Get("Content-Encoding"))

	type one struct {
		labels []label
		smp    []prompb.Sample
		typ    writev2.Metadata_MetricType
		help   string
	}
	var got []one
	ct := r.Header.Get("Content-Type")
	if strings.Contains(ct, "io.prometheus.write.v2.Request") {
		require.Equal(s.t, "2.0.0", r.Header.Get("X-Prometheus-Remote-Write-Version"))
		var req writev2.Request
		require.NoError(s.t, req.Unmarshal(raw))
		require.Equal(s.t, "", req.Symbols[0])
		for _, ts := range req.Timeseries {
			var o one
			require.Zero(s.t, len(ts.LabelsRefs)%2)
			for i := 0; i < len(ts.LabelsRefs); i += 2 {
				o.labels = append(o.labels, label{req.Symbols[ts.LabelsRefs[i]], req.Symbols[ts.LabelsRefs[i+1]]})
			}
			for _, x := range ts.Samples {
				o.smp = append(o.smp, prompb.Sample{Value: x.Value, Timestamp: x.Timestamp})
			}
			o.typ = ts.Metadata.Type
			o.help = req.Symbols[ts.Metadata.HelpRef]
			got = append(got, o)
		}
	} else {
		require.Equal(s.t, "application/x-protobuf", ct)
		require.Equal(s.t, "0.1.0", r.Header.Get("X-Prometheus-Remote-Write-Version"))
		var req prompb.WriteRequest
		require.NoError(s.t, req.Unmarshal(raw))
		for _, ts := range req.Timeseries {
			var o one
			for _, l := range ts.Labels {
				o.labels = append(o.labels, label{l.Name, l.Value})
			}
			o.smp = ts.Samples
			got = append(got, o)
		}
	}

	n := 0
	s.mu.Lock()
	s.ctypes[ct]++
	for _, o := range got {
		var key strings.Builder
		for _, l := range o.labels {
			key.WriteString(l.name + "=" + l.value + ",")
		}
		rs := s.series[key.String()]
		if rs == nil {
			rs = &received{labels: o.labels, typ: o.typ, help: o.help}
			s.series[key.String()] = rs
		}
		rs.updates++
		for _, x := range o.smp {
			rs.t = append(rs.t, x.Timestamp)
			rs.v = append(rs.v, x.Value)
			n++
		}
	}
	s.mu.Unlock()
	if s.reply != nil {
		s.reply(w, n)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func testOptions(url string, p Protocol) Options {
	o := DefaultOptions()
	o.URL = url
	o.Protocol = p
	o.Series = 500
	o.MetricNames = 12
	o.SeriesPerRequest = 64
	o.SamplesPerSeries = 2
	o.Concurrency = 3
	o.Rounds = 3
	o.Start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	o.Step = 5 * time.Minute
	o.Seed = 42
	return o
}

func TestRequestsDecode(t *testing.T) {
	for _, p := range []Protocol{RW1, RW2} {
		t.Run("RW"+p.String(), func(t *testing.T) {
			s, srv := newSink(t)
			o := testOptions(srv.URL, p)
			r, err := Run(context.Background(), o)
			require.NoError(t, err)

			// 500 series over 3 workers: 166, 167 and 167 series, 3 requests each per round.
			require.EqualValues(t, 3*3*3, r.Requests)
			require.EqualValues(t, 500*2*3, r.Samples)
			require.Equal(t, r.Samples, r.Accepted)
			require.Equal(t, map[int]int64{http.StatusNoContent: r.Requests}, r.Status)
			require.Zero(t, r.Errors)
			require.EqualValues(t, 3, r.Rounds)
			require.Equal(t, o.Start.Add(3*2*o.Step), r.NextStart)
			require.Positive(t, r.Latency.P50)
			require.LessOrEqual(t, r.Latency.P99, r.Latency.Max)
			require.Positive(t, r.Bytes)
			require.Greater(t, r.RawBytes, r.Bytes)
			require.Len(t, s.ctypes, 1)

			require.Len(t, s.series, 500)
			names := map[string]bool{}
			counters := 0
			for _, rs := range s.series {
				require.Len(t, rs.labels, 8)
				require.True(t, slices.IsSortedFunc(rs.labels, func(a, b label) int { return strings.Compare(a.name, b.name) }))
				var ln []string
				for _, l := range rs.labels {
					ln = append(ln, l.name)
					require.NotEmpty(t, l.value)
				}
				require.Equal(t, []string{"__name__", "code", "container", "instance", "job", "method", "namespace", "pod"}, ln)
				name := rs.labels[0].value
				names[name] = true
				require.Equal(t, 3, rs.updates)

				// Strictly increasing timestamps, one step apart, across requests and rounds.
				require.Len(t, rs.t, 6)
				for i := range rs.t {
					require.Equal(t, o.Start.Add(time.Duration(i)*o.Step).UnixMilli(), rs.t[i])
				}
				for _, v := range rs.v {
					require.False(t, math.IsNaN(v) || math.IsInf(v, 0))
					require.GreaterOrEqual(t, v, 0.0)
				}
				isCounter := strings.HasSuffix(name, "_total")
				if isCounter {
					counters++
					for i := 1; i < len(rs.v); i++ {
						require.Greater(t, rs.v[i], rs.v[i-1], "counter %s decreased", name)
					}
				}
				if p == RW2 {
					want := writev2.Metadata_METRIC_TYPE_GAUGE
					if isCounter {
						want = writev2.Metadata_METRIC_TYPE_COUNTER
					}
					require.Equal(t, want, rs.typ, name)
					require.NotEmpty(t, rs.help)
				}
			}
			require.Len(t, names, 12)
			// 6 of the 12 names are counters, and 500 series cycle through the names.
			require.InDelta(t, 250, counters, 6)
		})
	}
}

// TestContinuation checks that a second run, of the same generator or of a new one started at
// the first one's NextStart (as a new process would be), keeps every series' timestamps
// increasing and its counters monotone.
func TestContinuation(t *testing.T) {
	for _, p := range []Protocol{RW1, RW2} {
		t.Run("RW"+p.String(), func(t *testing.T) {
			s, srv := newSink(t)
			o := testOptions(srv.URL, p)
			o.Rounds = 1
			g, err := New(o)
			require.NoError(t, err)
			defer g.Close()
			r1, err := g.Run(context.Background())
			require.NoError(t, err)
			r2, err := g.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, o.Start.Add(2*o.Step), r1.NextStart)
			require.Equal(t, o.Start.Add(4*o.Step), r2.NextStart)

			o.Start = r2.NextStart
			o.Rounds = 2
			_, err = Run(context.Background(), o)
			require.NoError(t, err)

			for _, rs := range s.series {
				require.Len(t, rs.t, 8)
				for i := 1; i < len(rs.t); i++ {
					require.Equal(t, o.Step.Milliseconds(), rs.t[i]-rs.t[i-1])
					if strings.HasSuffix(rs.labels[0].value, "_total") {
						require.Greater(t, rs.v[i], rs.v[i-1])
					}
				}
			}
		})
	}
}

// TestDeterministic checks that the seed alone decides the requests.
func TestDeterministic(t *testing.T) {
	o := testOptions("http://unused", RW2)
	encodeAll := func(o Options) []byte {
		g, err := New(o)
		require.NoError(t, err)
		var out []byte
		for _, w := range g.workers {
			for i := range w.chunks {
				b, _ := w.enc.encode(&w.chunks[i], g.startMs, g.stepMs)
				out = append(out, b...)
			}
		}
		return out
	}
	a, b := encodeAll(o), encodeAll(o)
	require.Equal(t, a, b)
	o.Seed++
	require.NotEqual(t, a, encodeAll(o))

	// In RW 1.0 every series' bytes stand alone, so they do not depend on how the series are
	// split among workers and requests.
	o = testOptions("http://unused", RW1)
	a = encodeAll(o)
	o.Concurrency, o.SeriesPerRequest = 1, 100
	require.Equal(t, a, encodeAll(o))
}

// TestSeasons checks the shape of the values over a week of 5-minute samples: a daily cycle
// with its peak in the afternoon, lower weekends, and counters whose rate follows the same shape.
func TestSeasons(t *testing.T) {
	names := metricNames(2, 0.5)
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC).UnixMilli() // a Monday
	step := 5 * time.Minute
	var gauge, counter series
	for i := 0; ; i++ {
		gauge = newSeries(7, i, names[1], "200", step)
		if gauge.amp > 0.3 && gauge.weekly == 1 && gauge.group == 0 && gauge.noise < 0.08 {
			break
		}
	}
	for i := 0; ; i++ {
		counter = newSeries(7, i, names[0], "200", step)
		if counter.amp > 0.3 && counter.weekly == 1 && counter.group == 0 {
			break
		}
	}
	hourly := make([]float64, 24)
	var weekday, weekend float64
	prev := math.Inf(-1)
	for n := range 2016 {
		tms := start + int64(n)*step.Milliseconds()
		z := seasonAt(0, tms)
		v := gauge.value(&z, tms)
		hourly[n%288/12] += v
		if n/288 >= 5 {
			weekend += v / 2
		} else {
			weekday += v / 5
		}
		c := counter.value(&z, tms)
		require.Greater(t, c, prev)
		prev = c
	}
	// Hour h averages h:00 to h:55, so the extremes at 14:00 and 02:00 fall in hours 13 or 14,
	// and 1 or 2.
	require.Contains(t, []int{13, 14}, slices.Index(hourly, slices.Max(hourly)), "peak hour")
	require.Contains(t, []int{1, 2}, slices.Index(hourly, slices.Min(hourly)), "lowest hour")
	require.Less(t, weekend, 0.75*weekday)

	// The counter's rate averaged over a day is its base rate times the day's weekday factor.
	day0 := seasonAt(0, start)
	day1 := seasonAt(0, start+86400e3)
	rate := (counter.value(&day1, start+86400e3) - counter.value(&day0, start)) / 86400
	require.InDelta(t, counter.base*weekdayFactor[0], rate, counter.base*0.01)
}

func TestLabelsUnique(t *testing.T) {
	names := metricNames(7, 0.3)
	for _, n := range []int{2, 3, 5, 8, 9, 14, 16} {
		seen := make(map[string]bool, 5000)
		var ls []label
		for i := range 5000 {
			ls = labelSet(ls, names, i, n)
			var key strings.Builder
			for j, l := range ls {
				if j > 0 && ls[j-1].name >= l.name {
					t.Fatalf("labels %d: not sorted: %v", n, ls)
				}
				key.WriteString(l.name + "=" + l.value + ",")
			}
			if len(ls) != n || seen[key.String()] {
				t.Fatalf("labels %d: series %d is %s: wrong count or a duplicate", n, i, key.String())
			}
			seen[key.String()] = true
		}
	}
}

func TestMetricNames(t *testing.T) {
	ns := metricNames(40, 0.25)
	seen := map[string]bool{}
	for i, n := range ns {
		require.False(t, seen[n.name])
		seen[n.name] = true
		require.Equal(t, i < 10, n.counter)
		require.Equal(t, n.counter, strings.HasSuffix(n.name, "_total"), n.name)
	}
	require.Equal(t, "svc2_http_requests_in_flight", ns[10+len(gaugeKinds)+2].name)
}

func TestBounds(t *testing.T) {
	_, srv := newSink(t)
	o := testOptions(srv.URL, RW1)
	o.Rounds = 0
	o.Requests = 7
	r, err := Run(context.Background(), o)
	require.NoError(t, err)
	require.EqualValues(t, 7, r.Requests)

	o.Requests = 0
	o.Duration = 300 * time.Millisecond
	began := time.Now()
	r, err = Run(context.Background(), o)
	require.NoError(t, err)
	require.Less(t, time.Since(began), 5*time.Second)
	require.Positive(t, r.Requests)

	o.Duration = 0
	_, err = Run(context.Background(), o)
	require.ErrorContains(t, err, "no bound")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o.Rounds = 1
	r, err = Run(ctx, o)
	require.ErrorIs(t, err, context.Canceled)
	require.NotNil(t, r)
	require.Zero(t, r.Requests)
}

// TestRate checks that the rate is a ceiling over all workers.
func TestRate(t *testing.T) {
	_, srv := newSink(t)
	o := testOptions(srv.URL, RW1)
	o.Series, o.SeriesPerRequest, o.SamplesPerSeries, o.Concurrency = 100, 50, 1, 2
	o.Rounds = 0
	o.Requests = 6 // 300 samples
	o.Rate = 1000
	r, err := Run(context.Background(), o)
	require.NoError(t, err)
	// The first request goes at once; the other five wait 50ms each.
	require.GreaterOrEqual(t, r.Elapsed, 240*time.Millisecond)
}

func TestStatusAndAccepted(t *testing.T) {
	for _, p := range []Protocol{RW1, RW2} {
		t.Run("RW"+p.String(), func(t *testing.T) {
			s, srv := newSink(t)
			var mu sync.Mutex
			calls := 0
			s.reply = func(w http.ResponseWriter, samples int) {
				mu.Lock()
				calls++
				c := calls
				mu.Unlock()
				switch c % 3 {
				case 1:
					w.Header().Set("Retry-After", "1")
					http.Error(w, "too many concurrent requests", http.StatusTooManyRequests)
				case 2: // a partial write
					if p == RW2 {
						w.Header().Set("X-Prometheus-Remote-Write-Samples-Written", "10")
					}
					http.Error(w, "rejected some series", http.StatusBadRequest)
				default:
					w.WriteHeader(http.StatusNoContent)
				}
			}
			o := testOptions(srv.URL, p)
			o.Concurrency, o.Rounds, o.SamplesPerSeries = 1, 0, 1
			o.Requests = 6
			o.Series, o.SeriesPerRequest = 60, 30
			r, err := Run(context.Background(), o)
			require.NoError(t, err)
			require.Equal(t, map[int]int64{429: 2, 400: 2, 204: 2}, r.Status)
			want := int64(2 * 30)
			if p == RW2 {
				want += 2 * 10
			}
			require.Equal(t, want, r.Accepted)
			require.Equal(t, "HTTP 429: too many concurrent requests", r.FirstError)
			// Failed requests are not retried: timestamps move on.
			require.EqualValues(t, 3, r.Rounds)
		})
	}
}

func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	o := testOptions(url, RW1)
	o.Rounds = 1
	r, err := Run(context.Background(), o)
	require.NoError(t, err)
	require.Equal(t, r.Requests, r.Errors)
	require.Zero(t, r.Accepted)
	require.Contains(t, r.FirstError, "connection refused")
}

func TestLatencies(t *testing.T) {
	var l latencies
	for i := 1; i <= 10000; i++ {
		l.record(time.Duration(i) * time.Microsecond)
	}
	s := l.summary()
	within := func(want, got time.Duration) {
		require.InEpsilon(t, float64(want), float64(got), 0.016)
	}
	within(5000*time.Microsecond, s.P50)
	within(9000*time.Microsecond, s.P90)
	within(9900*time.Microsecond, s.P99)
	require.Equal(t, 10000*time.Microsecond, s.Max)
	within(5000500*time.Nanosecond, s.Mean)
	for v := int64(0); v < 1<<20; v += 7 {
		require.LessOrEqual(t, math.Abs(float64(bucketValue(bucket(v))-v)), float64(v)/64+1, v)
	}
}

func TestReportJSON(t *testing.T) {
	r := &Report{Protocol: RW2, Elapsed: 2 * time.Second, Accepted: 1000, Samples: 1000,
		Status: map[int]int64{204: 3}, UserCPU: time.Second, NextStart: time.Unix(1700000000, 0)}
	b, err := r.MarshalJSON()
	require.NoError(t, err)
	s := string(b)
	for _, want := range []string{`"protocol":"2.0"`, `"samples_accepted_per_second":500`, `"status":{"204":3}`,
		`"cpu_seconds_per_million_samples":1000`, `"next_start_unix":1700000000`, `"next_start":"2023-11-14T22:13:20Z"`} {
		require.Contains(t, s, want)
	}
	var out strings.Builder
	require.NoError(t, r.WriteText(&out))
	require.Contains(t, out.String(), "samples accepted   1000 (500/s)")
}

// BenchmarkEncode measures what the generator spends per request, which bounds the load one
// core of it can offer.
func BenchmarkEncode(b *testing.B) {
	for _, p := range []Protocol{RW1, RW2} {
		b.Run("RW"+p.String(), func(b *testing.B) {
			o := testOptions("http://unused", p)
			o.Series, o.SeriesPerRequest, o.SamplesPerSeries, o.Concurrency = 2000, 2000, 1, 1
			g, err := New(o)
			require.NoError(b, err)
			w := g.workers[0]
			b.ReportAllocs()
			round := int64(0)
			for b.Loop() {
				raw, _ := w.enc.encode(&w.chunks[0], g.startMs+round*g.stepMs, g.stepMs)
				w.enc.snap.Encode(raw)
				round++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/2000, "ns/sample")
		})
	}
}

// TestChurn: after every round, Churn series never sent before are sent once, at the round's
// sample times, and continuing the generator keeps them new.
func TestChurn(t *testing.T) {
	for _, p := range []Protocol{RW1, RW2} {
		t.Run("RW"+p.String(), func(t *testing.T) {
			s, srv := newSink(t)
			o := testOptions(srv.URL, p)
			o.Churn = 70
			o.Rounds = 2
			g, err := New(o)
			require.NoError(t, err)
			defer g.Close()
			r1, err := g.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, int64(2*70), r1.NewSeries)
			r2, err := g.Run(context.Background())
			require.NoError(t, err)
			require.Equal(t, int64(2*70), r2.NewSeries)
			require.Equal(t, r1.Samples+r2.Samples, r1.Accepted+r2.Accepted)

			require.Len(t, s.series, o.Series+4*70)
			steady, churned := 0, 0
			for _, rs := range s.series {
				switch rs.updates {
				case 4: // one request per round, 2 runs of 2 rounds
					steady++
					require.Len(t, rs.t, 4*o.SamplesPerSeries)
				case 1:
					churned++
					require.Len(t, rs.t, o.SamplesPerSeries)
				}
				require.True(t, slices.IsSorted(rs.t))
			}
			require.Equal(t, o.Series, steady)
			require.Equal(t, 4*70, churned)
		})
	}
}

// TestHostile sends the hostile requests to a receiver that answers each as owed, and to one that
// accepts everything: the report counts what was sent and what was not answered as owed.
func TestHostile(t *testing.T) {
	set := HostileRequests(time.Now(), 0)
	want := map[string]int{}
	for _, h := range set {
		want[HostileUserAgent+" ("+h.Name+")"] = h.WantCode
	}
	for _, honest := range []bool{true, false} {
		t.Run(map[bool]string{true: "honest", false: "accepts all"}[honest], func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				code := http.StatusNoContent
				if c, ok := want[r.UserAgent()]; ok && honest {
					code = c
				}
				w.WriteHeader(code)
			}))
			defer srv.Close()
			o := testOptions(srv.URL, RW1)
			o.Rounds = 0
			o.Rate = 1000
			// Ten intervals per request, so that a loaded machine still reaches the last ones; the
			// slow (slowloris) requests at the end of the set hold the sender until the run ends.
			o.Duration = time.Duration(len(set)+2) * 200 * time.Millisecond
			o.HostileInterval = 20 * time.Millisecond
			r, err := Run(context.Background(), o)
			require.NoError(t, err)
			require.GreaterOrEqual(t, r.HostileSent, int64(len(set)-2), "all but the last ones sent")
			if honest {
				require.Zero(t, r.HostileUnexpected, r.FirstUnexpected)
			} else {
				require.Positive(t, r.HostileUnexpected)
				require.Contains(t, r.FirstUnexpected, "corrupt snappy: got 204")
			}
		})
	}
}
