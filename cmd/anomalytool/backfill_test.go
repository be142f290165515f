package main

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/stretchr/testify/require"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/config"
	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// historyProm serves /api/v1/series, /api/v1/metadata and range-vector /api/v1/query as
// Prometheus does, over a minute-by-minute daily wave of two series up to end.
type historyProm struct {
	end    time.Time
	series []labels.Labels
}

func (h *historyProm) value(t time.Time) float64 {
	return 50 + 20*math.Sin(2*math.Pi*float64(t.Unix()%86400)/86400)
}

func (h *historyProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		promError(w, http.StatusBadRequest, "bad_data", err.Error())
		return
	}
	p := parser.NewParser(parser.Options{})
	match := func(ms []*labels.Matcher) []labels.Labels {
		var out []labels.Labels
		for _, s := range h.series {
			ok := true
			for _, m := range ms {
				ok = ok && m.Matches(s.Get(m.Name))
			}
			if ok {
				out = append(out, s)
			}
		}
		return out
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/api/v1/metadata":
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{}})
	case "/api/v1/series":
		var data []map[string]string
		for _, sel := range r.Form["match[]"] {
			ms, err := p.ParseMetricSelector(sel)
			if err != nil {
				promError(w, http.StatusBadRequest, "bad_data", err.Error())
				return
			}
			for _, s := range match(ms) {
				data = append(data, s.Map())
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
	case "/api/v1/query":
		expr, err := p.ParseExpr(r.Form.Get("query"))
		if err != nil {
			promError(w, http.StatusBadRequest, "bad_data", err.Error())
			return
		}
		ms := expr.(*parser.MatrixSelector)
		ts, _ := strconv.ParseFloat(r.Form.Get("time"), 64)
		at := time.UnixMilli(int64(ts * 1000))
		type stream struct {
			Metric map[string]string `json:"metric"`
			Values [][2]any          `json:"values"`
		}
		var result []stream
		for _, s := range match(ms.VectorSelector.(*parser.VectorSelector).LabelMatchers) {
			st := stream{Metric: s.Map()}
			for t := at.Add(-ms.Range).Truncate(time.Minute); !t.After(at) && !t.After(h.end); t = t.Add(time.Minute) {
				if t.Before(at.Add(-ms.Range)) {
					continue
				}
				st.Values = append(st.Values, [2]any{float64(t.Unix()), strconv.FormatFloat(h.value(t), 'f', -1, 64)})
			}
			result = append(result, st)
		}
		json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": result}})
	default:
		promError(w, http.StatusNotFound, "bad_data", "not found")
	}
}

func TestBackfillCommand(t *testing.T) {
	end := time.Now().Truncate(time.Minute).Add(-time.Minute)
	h := &historyProm{end: end, series: []labels.Labels{
		labels.FromStrings("__name__", "cpu", "job", "api"),
		labels.FromStrings("__name__", "cpu", "job", "db"),
		labels.FromStrings("__name__", "mem", "job", "api"),
	}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	dir := t.TempDir()
	cfgPath := writeFile(t, dir, "anomaly.yml", "rules:\n  - selector: '{__name__=\"cpu\"}'\n    learning_period: 1d\n  - learning_period: 1d\n")
	out := filepath.Join(dir, "checkpoint")

	code, _, stderr := runTool(t, "", "backfill", "--prometheus.url", srv.URL, "--config", cfgPath, "--lookback", "3d", "--output", out)
	require.Equal(t, 0, code, stderr)
	require.Regexp(t, `2 series found, 2 backfilled with 86[34][0-9] samples, 0 failed`, stderr)
	require.Contains(t, stderr, "wrote 2 series")

	// The server's store starts from the checkpoint and scores the next sample as known.
	cfg, err := config.LoadFile(cfgPath)
	require.NoError(t, err)
	store := detector.NewStore(cfg.StoreOptions(), nil)
	st, err := detector.LoadCheckpointFile(store, out)
	require.NoError(t, err)
	require.Equal(t, 2, st.Series)
	next := end.Add(time.Minute)
	require.NoError(t, store.Append(&batch.Batch{Series: []batch.Series{{
		Labels:  []batch.Label{{Name: "__name__", Value: "cpu"}, {Name: "job", Value: "api"}},
		Samples: []batch.Sample{{T: next.UnixMilli(), V: h.value(next)}},
	}}}))
	r, ok := store.Lookup(labels.FromStrings("__name__", "cpu", "job", "api"))
	require.True(t, ok)
	require.False(t, r.Learning)
	require.Less(t, r.Score, 1.0)

	// --match picks the series instead of the rules' selectors.
	code, _, stderr = runTool(t, "", "backfill", "--prometheus.url", srv.URL, "--config", cfgPath, "--lookback", "1d", "--match", `{job="api"}`, "--output", out)
	require.Equal(t, 0, code, stderr)
	require.Contains(t, stderr, "2 series found")

	// Without a selector anywhere, the command says what to do.
	code, _, stderr = runTool(t, "", "backfill", "--prometheus.url", srv.URL, "--output", out)
	require.Equal(t, 1, code)
	require.Contains(t, stderr, "--match")
}
