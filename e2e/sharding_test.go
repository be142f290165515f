package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// shardingExporterConfig scores only the synthetic target's metrics, so that the input set is
// known exactly (not the up and scrape_* series that senders add).
const shardingExporterConfig = `
global:
  stale_after: 1m
rules:
  - selector: '{__name__=~"synth_.*"}'
    learning_period: 5s
`

// syntheticSeries are the target's series: gauges and counters with a few labels each.
var syntheticSeries = func() []map[string]string {
	var out []map[string]string
	for i := range 10 {
		out = append(out, map[string]string{"__name__": "synth_load", "host": fmt.Sprintf("h%02d", i)})
	}
	for _, q := range []string{"a", "b", "c", "d"} {
		out = append(out, map[string]string{"__name__": "synth_queue_depth", "queue": q})
	}
	for _, c := range []string{"200", "404", "500", "503"} {
		out = append(out, map[string]string{"__name__": "synth_requests_total", "code": c})
	}
	return out
}()

// syntheticTarget serves syntheticSeries in the text format, with values that move.
func syntheticTarget(t *testing.T) string {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		el := time.Since(start).Seconds()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		var b strings.Builder
		b.WriteString("# TYPE synth_load gauge\n# TYPE synth_queue_depth gauge\n# TYPE synth_requests_total counter\n")
		for i, s := range syntheticSeries {
			v := 50 + 10*math.Sin(el/7+float64(i))
			if strings.HasSuffix(s["__name__"], "_total") {
				v = 1000*float64(i) + el*float64(5+i)
			}
			b.WriteString(s["__name__"] + "{")
			for k, lv := range s {
				if k != "__name__" {
					fmt.Fprintf(&b, "%s=%q", k, lv)
				}
			}
			fmt.Fprintf(&b, "} %g\n", v)
		}
		_, _ = w.Write([]byte(b.String()))
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startVictoriaMetrics runs Debian's single-node VictoriaMetrics on a free port with a temporary
// storage directory; data is queryable at once (no latency offset, no cache).
func startVictoriaMetrics(t *testing.T) string {
	t.Helper()
	bin := lookBinary(t, "victoria-metrics", "victoria-metrics")
	addr := freePort(t)
	start(t, "victoria-metrics", bin, "-httpListenAddr="+addr, "-storageDataPath="+t.TempDir(),
		"-retentionPeriod=1", "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=WARN")
	eventually(t, 20*time.Second, "victoria-metrics ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := httpGet(ctx, "http://"+addr+"/health")
		return err
	})
	return addr
}

// vmSeries is one line of VictoriaMetrics' /api/v1/export.
type vmSeries struct {
	Metric     map[string]string `json:"metric"`
	Values     []float64         `json:"values"`
	Timestamps []int64           `json:"timestamps"`
}

func vmExport(addr, match string) ([]vmSeries, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := httpGet(ctx, "http://"+addr+"/api/v1/export?match[]="+url.QueryEscape(match))
	if err != nil {
		return nil, err
	}
	var out []vmSeries
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var s vmSeries
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// scoreKey is the key of an output series from its input series' labels: the labels less
// __name__, with anomaly_metric.
func scoreKey(input map[string]string) string {
	m := map[string]string{"anomaly_metric": input["__name__"]}
	for k, v := range input {
		if k != "__name__" {
			m[k] = v
		}
	}
	return key(m)
}

// expectedScores are the keys of the anomaly_score series of every synthetic input series
// scraped by job from target.
func expectedScores(job, target string) map[string]bool {
	want := map[string]bool{}
	for _, s := range syntheticSeries {
		m := map[string]string{"job": job, "instance": target}
		for k, v := range s {
			m[k] = v
		}
		want[scoreKey(m)] = true
	}
	return want
}

// scoresOf reads the anomaly_score series on an exporter's /scores.
func scoresOf(addr string) (map[string]bool, error) {
	mfs, err := scrapeFamilies(addr, "/scores")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, m := range mfs["anomaly_score"].GetMetric() {
		l := map[string]string{}
		for _, lp := range m.GetLabel() {
			l[lp.GetName()] = lp.GetValue()
		}
		out[key(l)] = true
	}
	return out, nil
}

// hashmodRelabel keeps bucket k of n of the series, hashed on the labels that identify them,
// and drops the temporary label (remote-write relabelling does not drop __ labels by itself).
func hashmodRelabel(indent string, k, n int) string {
	return strings.ReplaceAll(fmt.Sprintf(`- source_labels: [__name__, job, instance, host, queue, code]
  modulus: %d
  target_label: __tmp_shard
  action: hashmod
- source_labels: [__tmp_shard]
  regex: "%d"
  action: keep
- regex: __tmp_shard
  action: labeldrop
`, n, k), "\n", "\n"+indent)
}

// checkShards checks what a user of sharded replicas checks: VictoriaMetrics has exactly one
// anomaly_score series for every input series, each sample scored once; every replica serves
// only its share on /scores, the two shares are disjoint and cover every series, and no output
// sample was lost.
func checkShards(t *testing.T, vm, job, target string, exporters [2]string) {
	t.Helper()
	want := expectedScores(job, target)
	var scores []vmSeries
	eventually(t, 60*time.Second, job+": one anomaly_score per input series in VictoriaMetrics", func() error {
		var err error
		if scores, err = vmExport(vm, fmt.Sprintf(`anomaly_score{job=%q}`, job)); err != nil {
			return err
		}
		labelSets := make([]map[string]string, len(scores))
		for i, s := range scores {
			labelSets[i] = s.Metric
		}
		missing, extra := exactlyOnce(want, labelSets)
		if len(missing) > 0 || len(extra) > 0 {
			return fmt.Errorf("%d expected, %d in VictoriaMetrics; missing %d (e.g. %v), extra %d (e.g. %v)",
				len(want), len(scores), len(missing), first(missing), len(extra), first(extra))
		}
		return nil
	})
	for _, s := range scores {
		seen := map[int64]bool{}
		for _, ts := range s.Timestamps {
			require.False(t, seen[ts], "%v: two scores at %d: scored by two replicas", s.Metric, ts)
			seen[ts] = true
		}
	}

	// Every replica serves only its share; together they cover every series once.
	var shares [2]map[string]bool
	for i, e := range exporters {
		var err error
		shares[i], err = scoresOf(e)
		require.NoError(t, err)
		require.NotEmpty(t, shares[i], "replica %d scores nothing", i)
		n, err := scrapeValue(e, "/metrics", "anomaly_exporter_detector_series")
		require.NoError(t, err)
		require.Equal(t, float64(len(shares[i])), n, "replica %d tracks only what it serves", i)
		sent, err := scrapeValue(e, "/metrics", "anomaly_exporter_remote_write_out_samples_sent_total")
		require.NoError(t, err)
		require.Positive(t, sent)
		for _, m := range []string{"failed", "dropped"} {
			v, err := scrapeValue(e, "/metrics", "anomaly_exporter_remote_write_out_samples_"+m+"_total")
			require.NoError(t, err)
			require.Zero(t, v, "replica %d: samples %s", i, m)
		}
	}
	for k := range shares[0] {
		require.False(t, shares[1][k], "%s scored by both replicas", k)
	}
	require.Equal(t, len(want), len(shares[0])+len(shares[1]))
}

// Two replicas behind Prometheus's hashmod sharding and two behind vmagent's, all
// remote-writing their scores into one VictoriaMetrics.
func TestShardedReplicasRemoteWriteScores(t *testing.T) {
	requireE2E(t)
	vmagentBin := lookBinary(t, "vmagent", "victoria-metrics")
	vm := startVictoriaMetrics(t)
	target := syntheticTarget(t)
	out := []string{"--remote-write.url=http://" + vm + "/api/v1/write", "--remote-write.batch-send-deadline=200ms"}
	var promShards, vmaShards [2]string
	for i := range 2 {
		promShards[i], _ = startExporter(t, shardingExporterConfig, out...)
		vmaShards[i], _ = startExporter(t, shardingExporterConfig, out...)
	}

	// Prometheus: one remote_write per replica, each keeping one hashmod bucket; and the input
	// series into VictoriaMetrics too, to compare timestamps.
	startPrometheus(t, fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: synthetic
    static_configs: [{targets: [%[1]q]}]
remote_write:
  - url: http://%[2]s/api/v1/write
    queue_config: {batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 1s}
    write_relabel_configs:
      %[4]s
  - url: http://%[3]s/api/v1/write
    queue_config: {batch_send_deadline: 200ms, min_backoff: 100ms, max_backoff: 1s}
    write_relabel_configs:
      %[5]s
  - url: http://%[6]s/api/v1/write
    queue_config: {batch_send_deadline: 200ms}
`, target, promShards[0], promShards[1], hashmodRelabel("      ", 0, 2), hashmodRelabel("      ", 1, 2), vm))

	// vmagent: -remoteWrite.shardByURL where it exists (v1.86 on), else the same hashmod
	// relabelling per URL (-remoteWrite.urlRelabelConfig), which Debian's 1.79 has.
	dir := t.TempDir()
	scrapeCfg := filepath.Join(dir, "scrape.yml")
	require.NoError(t, os.WriteFile(scrapeCfg, []byte(fmt.Sprintf(`
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: synthetic-vmagent
    static_configs: [{targets: [%q]}]
`, target)), 0o644))
	help, _ := exec.Command(vmagentBin, "-help").CombinedOutput()
	vmaAddr := freePort(t)
	args := []string{"-httpListenAddr=" + vmaAddr, "-promscrape.config=" + scrapeCfg,
		"-remoteWrite.tmpDataPath=" + filepath.Join(dir, "tmp"), "-remoteWrite.flushInterval=200ms", "-loggerLevel=WARN"}
	for _, e := range vmaShards {
		args = append(args, "-remoteWrite.url=http://"+e+"/api/v1/write")
	}
	if bytes.Contains(help, []byte("remoteWrite.shardByURL")) {
		t.Log("vmagent: -remoteWrite.shardByURL")
		args = append(args, "-remoteWrite.shardByURL")
	} else {
		t.Log("vmagent without -remoteWrite.shardByURL: hashmod per URL with -remoteWrite.urlRelabelConfig")
		for k := range 2 {
			f := filepath.Join(dir, fmt.Sprintf("shard%d.yml", k))
			require.NoError(t, os.WriteFile(f, []byte(hashmodRelabel("", k, 2)), 0o644))
			args = append(args, "-remoteWrite.urlRelabelConfig="+f)
		}
	}
	start(t, "vmagent", vmagentBin, args...)

	checkShards(t, vm, "synthetic", target, promShards)
	checkShards(t, vm, "synthetic-vmagent", target, vmaShards)

	// The scores carry the input samples' timestamps: every score Prometheus's replicas wrote
	// is at the time of a scrape that Prometheus also wrote to VictoriaMetrics.
	scores, err := vmExport(vm, `anomaly_score{job="synthetic"}`)
	require.NoError(t, err)
	inputs, err := vmExport(vm, `{__name__=~"synth_.*",job="synthetic"}`)
	require.NoError(t, err)
	inputTS := map[string]map[int64]bool{}
	var latest int64
	for _, s := range inputs {
		ts := map[int64]bool{}
		for _, x := range s.Timestamps {
			ts[x] = true
			latest = max(latest, x)
		}
		inputTS[scoreKey(s.Metric)] = ts
	}
	checked := 0
	for _, s := range scores {
		delete(s.Metric, "__name__")
		k := key(s.Metric)
		require.Contains(t, inputTS, k)
		for _, x := range s.Timestamps {
			if x <= latest {
				require.True(t, inputTS[k][x], "%s: score at %d, no input sample then", k, x)
				checked++
			}
		}
	}
	require.Positive(t, checked)
}
