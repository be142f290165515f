package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// mixinExporterConfig scores the synthetic series with a learning period short enough for a
// test. The relative minimum deviation keeps the steady series' noise (±0.5%) inside the band
// whatever the model, while a tenfold jump stays far outside it.
const mixinExporterConfig = `
global:
  stale_after: 1m
rules:
  - name: synthetic
    selector: '{job="synthetic"}'
    seasonality: none
    min_rel_deviation: 0.05
    learning_period: 20s
`

// webhookMessage is the part of Alertmanager's webhook payload the test reads.
type webhookMessage struct {
	Status string `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
		StartsAt    time.Time         `json:"startsAt"`
	} `json:"alerts"`
	received time.Time
}

// webhook is an Alertmanager webhook receiver that keeps what it is sent.
type webhook struct {
	mu       sync.Mutex
	messages []webhookMessage
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var m webhookMessage
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	m.received = time.Now()
	h.mu.Lock()
	h.messages = append(h.messages, m)
	h.mu.Unlock()
}

func (h *webhook) all() []webhookMessage {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]webhookMessage(nil), h.messages...)
}

// withFor returns a rule file with the for of one alert replaced.
func withFor(t *testing.T, src []byte, alert, dur string) []byte {
	t.Helper()
	var doc yaml.Node
	require.NoError(t, yaml.Unmarshal(src, &doc))
	found := false
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.MappingNode {
			isAlert := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				isAlert = isAlert || n.Content[i].Value == "alert" && n.Content[i+1].Value == alert
			}
			for i := 0; isAlert && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == "for" {
					n.Content[i+1].Value = dur
					found = true
				}
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(&doc)
	require.Truef(t, found, "alert %s with a for", alert)
	out, err := yaml.Marshal(&doc)
	require.NoError(t, err)
	return out
}

// startAlertmanager runs Debian's Alertmanager, without clustering, on a free port.
func startAlertmanager(t *testing.T, cfg string) string {
	t.Helper()
	bin := lookBinary(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "alertmanager.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	addr := freePort(t)
	start(t, "alertmanager", bin,
		"--config.file="+cfgPath,
		"--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--cluster.listen-address=",
		"--log.level=warn",
	)
	eventually(t, 30*time.Second, "alertmanager ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := httpGet(ctx, "http://"+addr+"/-/ready")
		return err
	})
	return addr
}

// TestMixinAnomalyDetectedNotification runs the path from a score to a notification with the
// mixin's rendered rules: a synthetic gauge scraped and remote-written by Prometheus, scored by
// the exporter, /scores scraped back, AnomalyDetected evaluated (its for shortened to 1s) and
// sent to Alertmanager, which delivers it to a webhook with the value, the expected value, the
// band and the score in its annotations.
func TestMixinAnomalyDetectedNotification(t *testing.T) {
	requireE2E(t)
	testStart := time.Now()

	// The synthetic target: a gauge around a level, ±0.5% noise.
	var level atomic.Uint64
	level.Store(math.Float64bits(100))
	rng := rand.New(rand.NewPCG(1, 2))
	var rngMu sync.Mutex
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rngMu.Lock()
		noise := 1 + 0.005*(2*rng.Float64()-1)
		rngMu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE synthetic_gauge gauge\nsynthetic_gauge{service=\"checkout\"} %g\n", math.Float64frombits(level.Load())*noise)
	}))
	t.Cleanup(target.Close)

	hook := &webhook{}
	hookSrv := httptest.NewServer(hook)
	t.Cleanup(hookSrv.Close)

	exp, _ := startExporter(t, mixinExporterConfig)

	// The example's grouping and inhibition, with the test's webhook as the only receiver.
	am := startAlertmanager(t, fmt.Sprintf(`
route:
  receiver: webhook
  group_by: [cluster, namespace, job]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
inhibit_rules:
  - source_matchers: [alertname="AnomalyStorm"]
    target_matchers: [alertname="AnomalyDetected"]
    equal: [cluster, namespace, job]
receivers:
  - name: webhook
    webhook_configs:
      - url: %s/hook
        send_resolved: true
`, hookSrv.URL))

	// The rendered rules as committed, AnomalyDetected's for shortened to a test's size.
	rulesDir := t.TempDir()
	alerts, err := os.ReadFile("../rules/alerts.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "alerts.yaml"), withFor(t, alerts, "AnomalyDetected", "1s"), 0o644))
	recording, err := os.ReadFile("../rules/rules.yaml")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(rulesDir, "rules.yaml"), recording, 0o644))

	// The scrape and remote_write configuration the mixin's README documents. remote_write keeps
	// the input by name: a keep by job would also send back the mixin's recording rules and
	// ALERTS, which carry the input's job, and have them scored.
	prom := startPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%[1]q, %[2]q]
alerting:
  alertmanagers:
    - static_configs: [{targets: [%[3]q]}]
scrape_configs:
  - job_name: synthetic
    static_configs: [{targets: [%[4]q]}]
  - job_name: anomaly-exporter
    static_configs: [{targets: [%[5]q]}]
  - job_name: anomaly-scores
    honor_labels: true
    metrics_path: /scores
    static_configs: [{targets: [%[5]q]}]
remote_write:
  - url: http://%[5]s/api/v1/write
    queue_config: {batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 1s}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: synthetic_gauge
        action: keep
`, filepath.Join(rulesDir, "alerts.yaml"), filepath.Join(rulesDir, "rules.yaml"), am,
		strings.TrimPrefix(target.URL, "http://"), exp))

	// Every anomaly_exporter_* series the rules and dashboards read is one the exporter serves.
	requireSelfMetricsExist(t, exp)

	// Learning: the series is scored but marked learning, and nothing alerts.
	eventually(t, 50*time.Second, "the synthetic series' baseline learned", func() error {
		res, err := promQuery(prom, `anomaly_learning{job="synthetic", anomaly_metric="synthetic_gauge"} == 0`)
		if err != nil {
			return err
		}
		if len(res) != 1 {
			return fmt.Errorf("not learned yet: %v", res)
		}
		return nil
	})
	learned := time.Now()
	t.Logf("baseline learned %s after the test started", learned.Sub(testStart).Round(100*time.Millisecond))
	for _, m := range hook.all() {
		for _, a := range m.Alerts {
			t.Logf("delivered before the anomaly: %s %s %v", a.Status, a.Labels["alertname"], a.Annotations["description"])
		}
	}
	// Self-monitoring stays silent with the documented configuration.
	res, err := promQuery(prom, `ALERTS{alertname=~"AnomalyExporter.*"}`)
	require.NoError(t, err)
	require.Empty(t, res, "self-monitoring alerts pending or firing")
	// A stray alert of the steady phase must be gone before the anomaly, so that the one after
	// it is a new alert (and a new notification).
	eventually(t, 10*time.Second, "no AnomalyDetected before the anomaly", func() error {
		res, err := promQuery(prom, `ALERTS{alertname="AnomalyDetected"}`)
		if err != nil {
			return err
		}
		if len(res) > 0 {
			return fmt.Errorf("%v", res)
		}
		return nil
	})

	// The anomaly: the gauge jumps tenfold.
	injected := time.Now()
	level.Store(math.Float64bits(1000))

	var got, gotLabels map[string]string
	var delivered time.Time
	eventually(t, 30*time.Second, "AnomalyDetected delivered to the webhook", func() error {
		for _, m := range hook.all() {
			if m.received.Before(injected) {
				continue
			}
			for _, a := range m.Alerts {
				if a.Status == "firing" && a.Labels["alertname"] == "AnomalyDetected" && a.Labels["anomaly_metric"] == "synthetic_gauge" {
					got, gotLabels, delivered = a.Annotations, a.Labels, m.received
					return nil
				}
			}
		}
		return fmt.Errorf("%d messages so far", len(hook.all()))
	})
	t.Logf("injection to delivery of AnomalyDetected: %s", delivered.Sub(injected).Round(10*time.Millisecond))
	t.Logf("annotations: %q", got)
	require.Equal(t, "warning", gotLabels["severity"])
	require.Equal(t, "synthetic", gotLabels["job"])
	require.Equal(t, "checkout", gotLabels["service"])

	// The annotations say what happened without opening Grafana.
	require.Regexp(t, `^synthetic_gauge\{instance="127\.0\.0\.1:\d+", job="synthetic", service="checkout"\}$`, got["metric"])
	value := parseAnnotation(t, got, "value")
	expected := parseAnnotation(t, got, "expected")
	score := parseAnnotation(t, got, "score")
	lowerS, upperS, ok := strings.Cut(got["band"], " to ")
	require.Truef(t, ok, "band %q", got["band"])
	lower, err := strconv.ParseFloat(lowerS, 64)
	require.NoError(t, err)
	upper, err := strconv.ParseFloat(upperS, 64)
	require.NoError(t, err)
	require.InDelta(t, 1000, value, 10, "value")
	require.InDelta(t, 100, expected, 50, "expected: the level before the jump")
	require.True(t, lower <= expected && expected <= upper && upper < value, "band %v to %v around %v, below %v", lower, upper, expected, value)
	require.Greater(t, score, 1.0)
	require.Equal(t, fmt.Sprintf("%s is %s where its baseline expected %s (normal band %s to %s): anomaly score %s, above 1 for 5m.",
		got["metric"], got["value"], got["expected"], lowerS, upperS, strconv.FormatFloat(score, 'g', 3, 64)), got["description"])
	require.Equal(t, "A scored series is outside its normal band.", got["summary"])
	require.Contains(t, got["runbook_url"], "runbook.md#anomalydetected")
	t.Logf("whole test: %s", time.Since(testStart).Round(100*time.Millisecond))
}

func parseAnnotation(t *testing.T, a map[string]string, name string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(a[name], 64)
	require.NoErrorf(t, err, "annotation %s = %q", name, a[name])
	return v
}

// selfMetricName finds the exporter's metric names, not the recording rules named after them
// (instance:anomaly_exporter_...:rate5m).
var selfMetricName = regexp.MustCompile(`(?:^|[^:\w])(anomaly_exporter_\w*[a-z])(?:[^:\w]|$)`)

// requireSelfMetricsExist checks the anomaly_exporter_* names of the rendered rules and
// dashboards against what the exporter serves on /metrics.
func requireSelfMetricsExist(t *testing.T, exp string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := httpGet(ctx, "http://"+exp+"/metrics")
	require.NoError(t, err)
	served := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if name, _, ok := strings.Cut(line, " "); ok && !strings.HasPrefix(line, "#") {
			name, _, _ = strings.Cut(name, "{")
			served[name] = true
		}
	}
	files, err := filepath.Glob("../dashboards/*.json")
	require.NoError(t, err)
	files = append(files, "../rules/alerts.yaml", "../rules/rules.yaml")
	used := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range selfMetricName.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	var missing []string
	for name := range used {
		if !served[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "read by the mixin, not served on /metrics")
	require.NotEmpty(t, used)
}
