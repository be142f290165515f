package main

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	prommodel "github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

func TestChunks(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	for _, tc := range []struct {
		name     string
		end      time.Time
		maxSteps int64
		want     []v1.Range
	}{
		{"one point", t0, 10, []v1.Range{{Start: t0, End: t0, Step: time.Minute}}},
		{"one chunk", at(10), 10, []v1.Range{{Start: t0, End: at(10), Step: time.Minute}}},
		{"two chunks", at(11), 10, []v1.Range{{Start: t0, End: at(10), Step: time.Minute}, {Start: at(11), End: at(11), Step: time.Minute}}},
		{"off-grid end", at(25).Add(30 * time.Second), 10, []v1.Range{
			{Start: t0, End: at(10), Step: time.Minute},
			{Start: at(11), End: at(21), Step: time.Minute},
			{Start: at(22), End: at(25).Add(30 * time.Second), Step: time.Minute},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, chunks(t0, tc.end, time.Minute, tc.maxSteps))
		})
	}
}

// fakeProm serves /api/v1/query_range and /api/v1/metadata as Prometheus does, for two series
// computed from the requested timestamps: a counter whose rate follows a daily wave with one
// burst, and a gauge with a daily wave and one spike. It refuses, as Prometheus does, a query over
// 11000 points per series.
type fakeProm struct {
	query  string
	burst  time.Time
	mu     sync.Mutex
	ranges []v1.Range
}

func (f *fakeProm) counter(t time.Time) float64 {
	const day = 86400.0
	s := float64(t.Unix())
	v := 10*s - 2*day/(2*math.Pi)*math.Cos(2*math.Pi*s/day)
	if !t.Before(f.burst) {
		v += 30000
	}
	return v
}

func (f *fakeProm) gauge(t time.Time) float64 {
	v := 20 + 5*math.Sin(2*math.Pi*float64(t.Unix())/86400)
	if t.Equal(f.burst) {
		v += 100
	}
	return v
}

func promError(w http.ResponseWriter, code int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"status": "error", "errorType": typ, "error": msg})
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		promError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/metadata":
		data := map[string][]map[string]string{}
		if r.Form.Get("metric") == "requests_total" {
			data["requests_total"] = []map[string]string{{"type": "counter", "help": "Requests.", "unit": ""}}
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	case "/api/v1/query_range":
		secs := func(k string) time.Time {
			v, err := strconv.ParseFloat(r.Form.Get(k), 64)
			if err != nil {
				panic(err)
			}
			return time.UnixMilli(int64(math.Round(v * 1000))).UTC()
		}
		start, end := secs("start"), secs("end")
		stepS, err := strconv.ParseFloat(r.Form.Get("step"), 64)
		if err != nil {
			promError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		step := time.Duration(stepS * float64(time.Second))
		if end.Sub(start)/step > 11000 {
			promError(w, http.StatusBadRequest, "bad_data", "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)")
			return
		}
		if r.Form.Get("query") == "broken(" {
			promError(w, http.StatusBadRequest, "bad_data", `1:8: parse error: unclosed left parenthesis`)
			return
		}
		f.mu.Lock()
		f.ranges = append(f.ranges, v1.Range{Start: start, End: end, Step: step})
		f.mu.Unlock()
		type stream struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		}
		var result []stream
		if r.Form.Get("query") == f.query {
			c := stream{Metric: map[string]string{"__name__": "requests_total", "job": "api", "instance": "a:80"}}
			g := stream{Metric: map[string]string{"__name__": "temperature", "room": "lab"}}
			for ts := start; !ts.After(end); ts = ts.Add(step) {
				sec := float64(ts.UnixMilli()) / 1000
				c.Values = append(c.Values, [2]any{sec, strconv.FormatFloat(f.counter(ts), 'f', -1, 64)})
				g.Values = append(g.Values, [2]any{sec, strconv.FormatFloat(f.gauge(ts), 'f', -1, 64)})
			}
			result = append(result, c, g)
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": result}})
	default:
		http.NotFound(w, r)
	}
}

func TestBacktestPrometheus(t *testing.T) {
	t0 := time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
	const points = 10*24*60 + 1 // ten days at one minute: two range queries
	burst := t0.Add(8*24*time.Hour + 13*time.Hour)
	const query = `{__name__=~"requests_total|temperature"}`
	counterFile := seriesFileName(prommodel.Metric{"__name__": "requests_total", "job": "api", "instance": "a:80"})
	gaugeFile := seriesFileName(prommodel.Metric{"__name__": "temperature", "room": "lab"})
	require.Equal(t, "requests_total_instance_a_80_job_api-", counterFile[:len(counterFile)-len("01234567.csv")])

	for _, tc := range []struct {
		name    string
		args    []string
		counter bool
	}{
		{name: "types from metadata", counter: true},
		{name: "type forced", args: []string{"--type", "gauge"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeProm{query: query, burst: burst}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			dir := t.TempDir()
			svg := filepath.Join(dir, "plot.svg")
			args := append([]string{"backtest", "--prometheus.url", srv.URL, "--query", query,
				"--start", "2024-03-01T00:00:00Z", "--end", "2024-03-11T00:00:00Z", "--step", "1m",
				"--output-dir", filepath.Join(dir, "out"), "--plot", svg}, tc.args...)
			code, _, errs := runTool(t, "", args...)
			require.Equal(t, 0, code, errs)

			require.Len(t, fake.ranges, 2, "fetched in chunks")
			require.Equal(t, t0, fake.ranges[0].Start)
			require.Equal(t, fake.ranges[0].End.Add(time.Minute), fake.ranges[1].Start)
			require.Equal(t, t0.Add(10*24*time.Hour), fake.ranges[1].End)

			entries, err := os.ReadDir(filepath.Join(dir, "out"))
			require.NoError(t, err)
			require.Len(t, entries, 2)
			require.Contains(t, errs, fmt.Sprintf(`{__name__="requests_total", instance="a:80", job="api"} as a %s, rule "default"`, kind(tc.counter)))
			require.Contains(t, errs, `{__name__="temperature", room="lab"} as a gauge, rule "default"`)

			burstRow := int(burst.Sub(t0) / time.Minute)
			for _, f := range []struct {
				name    string
				counter bool
			}{{counterFile, tc.counter}, {gaugeFile, false}} {
				recs := readCSV(t, filepath.Join(dir, "out", f.name))
				require.Len(t, recs, points+1, f.name)
				require.Equal(t, "timestamp", recs[0][0])
				require.Equal(t, "2024-03-01T00:00:00Z", recs[1][0])
				require.Equal(t, "2024-03-11T00:00:00Z", recs[points][0])
				require.Equal(t, f.counter, recs[1][2] == "", "a counter's first sample has no score")
				if f.name == counterFile && !f.counter {
					continue // Its raw value, scored as a gauge, only ever grows: no burst to see.
				}
				row := recs[1+burstRow]
				require.Equal(t, "false", row[6], f.name)
				require.Greater(t, parseFloat(t, row[2]), 1.0, "%s at the burst: %q", f.name, row)
			}

			el := svgElements(t, svg)
			require.Equal(t, 2, el["g.series"])
			require.Equal(t, 2, el["path.band"])
			require.Equal(t, 2, el["polyline.observed"])
			require.Equal(t, 2, el["polyline.expected"])
			require.GreaterOrEqual(t, el["circle.anomaly"], 2)
		})
	}
}

func TestBacktestPrometheusErrors(t *testing.T) {
	fake := &fakeProm{query: "up"}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	for _, tc := range []struct {
		name   string
		args   map[string]string
		code   int
		stderr string
	}{
		{name: "query error", args: map[string]string{"query": "broken("}, code: 1, stderr: "unclosed left parenthesis"},
		{name: "no series", args: map[string]string{"query": "nothing"}, stderr: "the query returned no series"},
		{name: "end before start", args: map[string]string{"end": "2024-02-01T00:00:00Z"}, code: 1, stderr: "is before --start"},
		{name: "bad start", args: map[string]string{"start": "soon"}, code: 1, stderr: `--start: timestamp "soon"`},
		{name: "bad step", args: map[string]string{"step": "0s"}, code: 1, stderr: "--step must be positive"},
		{name: "bad step syntax", args: map[string]string{"step": "often"}, code: 1, stderr: "often"},
		{name: "unreachable", args: map[string]string{"prometheus.url": "http://127.0.0.1:1"}, code: 1, stderr: "range query up"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flags := map[string]string{"prometheus.url": srv.URL, "query": "up", "start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z", "output-dir": t.TempDir()}
			for k, v := range tc.args {
				flags[k] = v
			}
			args := []string{"backtest"}
			for k, v := range flags {
				args = append(args, "--"+k+"="+v)
			}
			code, _, errs := runTool(t, "", args...)
			require.Equal(t, tc.code, code, errs)
			require.Contains(t, errs, tc.stderr)
		})
	}
}
