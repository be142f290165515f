// Package e2e starts the real binaries (the exporter built from this tree, Debian's Prometheus)
// on 127.0.0.1 and checks what a user would check. It needs `prometheus` on PATH; `make test`
// runs it, `go test -short` leaves it out.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// exporterBinary builds ./cmd/anomaly_exporter once per test run.
func exporterBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "anomaly-e2e-bin")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "anomaly_exporter"), "../cmd/anomaly_exporter")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out.String())
		}
	})
	require.NoError(t, buildErr)
	return filepath.Join(binDir, "anomaly_exporter")
}

func requireE2E(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: runs without -short")
	}
}

// lookBinary finds a real component; its absence is a failure, not a skip: .ci/run installs it.
func lookBinary(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	require.NoErrorf(t, err, "%s is needed for the end-to-end tests: apt-get install -y %s (or run go test -short)", name, pkg)
	return p
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// process is a started binary whose output goes to a log file that is printed if the test fails.
type process struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func start(t *testing.T, name, bin string, args ...string) *process {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), name+".log")
	f, err := os.Create(logPath)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start())
	p := &process{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("---- %s log ----\n%s", name, tail(string(b), 60))
		}
	})
	return p
}

// stop sends SIGTERM and waits, then kills.
func (p *process) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond until it returns nil or the timeout passes, then fails with its last error.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = cond(); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s: %v", what, timeout, err)
}

func httpGet(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("GET %s: %s: %s", u, resp.Status, b)
	}
	return b, nil
}

// scrapeFamilies scrapes path on addr and parses it with Prometheus's text parser, as a scrape
// would.
func scrapeFamilies(addr, path string) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := httpGet(ctx, "http://"+addr+path)
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(bytes.NewReader(b))
}

// scrapeValue sums the samples of one metric family on a /metrics endpoint, for label pairs
// given as name=value.
func scrapeValue(addr, path, metric string, match ...string) (float64, error) {
	mfs, err := scrapeFamilies(addr, path)
	if err != nil {
		return 0, err
	}
	return familySum(mfs, metric, match...)
}

// familySum sums the samples of the family metric of one scrape whose labels include the
// name=value pairs of match.
func familySum(mfs map[string]*dto.MetricFamily, metric string, match ...string) (float64, error) {
	mf, ok := mfs[metric]
	if !ok {
		return 0, fmt.Errorf("%s not exposed", metric)
	}
	sum := 0.0
next:
	for _, m := range mf.GetMetric() {
		for _, kv := range match {
			n, v, _ := strings.Cut(kv, "=")
			found := false
			for _, lp := range m.GetLabel() {
				found = found || lp.GetName() == n && lp.GetValue() == v
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			sum += m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			sum += m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			sum += m.GetUntyped().GetValue()
		}
	}
	return sum, nil
}

// promSeries is one element of an instant-query result.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

// promQuery runs an instant query against Prometheus's HTTP API.
func promQuery(addr, q string) ([]promSeries, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := httpGet(ctx, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	var resp struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []promSeries `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	if resp.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", q, resp.Error)
	}
	return resp.Data.Result, nil
}

// startPrometheus runs Debian's prometheus with the given configuration on a free port.
func startPrometheus(t *testing.T, cfg string, extra ...string) string {
	t.Helper()
	addr, _ := runPrometheus(t, "prometheus", lookBinary(t, "prometheus", "prometheus"), cfg, extra...)
	return addr
}

// runPrometheus runs the Prometheus binary bin (Debian's, or the Prometheus 3 that make builds)
// with the given configuration on a free port, and waits until it is ready.
func runPrometheus(t *testing.T, name, bin, cfg string, extra ...string) (addr string, p *process) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "prometheus.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))
	addr = freePort(t)
	args := append([]string{
		"--config.file=" + cfgPath,
		"--storage.tsdb.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr,
		"--log.level=warn",
	}, extra...)
	p = start(t, name, bin, args...)
	eventually(t, 30*time.Second, name+" ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := httpGet(ctx, "http://"+addr+"/-/ready")
		return err
	})
	return addr, p
}

// startExporter runs the exporter built from this tree with the given config file contents
// (empty: the embedded default) and extra flags.
func startExporter(t *testing.T, cfg string, extra ...string) (addr string, p *process) {
	t.Helper()
	bin := exporterBinary(t)
	addr = freePort(t)
	args := []string{"--web.listen-address=" + addr, "--log.level=debug", "--storage.path=" + t.TempDir()}
	if cfg != "" {
		path := filepath.Join(t.TempDir(), "anomaly.yml")
		require.NoError(t, os.WriteFile(path, []byte(cfg), 0o644))
		args = append(args, "--config.file="+path)
	}
	p = start(t, "anomaly_exporter", bin, append(args, extra...)...)
	eventually(t, 20*time.Second, "exporter ready", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := httpGet(ctx, "http://"+addr+"/-/ready")
		return err
	})
	return addr, p
}
