package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

func status(t *testing.T, method, u string, body string, auth ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	require.NoError(t, err)
	if len(auth) == 2 {
		req.SetBasicAuth(auth[0], auth[1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func TestServerEndpointsAndReload(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "anomaly.yml")
	require.NoError(t, os.WriteFile(cfgPath, []byte("rules:\n  - selector: '{job=\"a\"}'\n"), 0o644))
	addr, p := startExporter(t, "", "--config.file="+cfgPath, "--web.enable-lifecycle")
	base := "http://" + addr

	for path, want := range map[string]string{
		"/":          "Anomaly Exporter",
		"/-/healthy": "Healthy",
		"/-/ready":   "Ready",
		"/metrics":   "anomaly_exporter_build_info",
		"/scores":    "# TYPE anomaly_score gauge",
	} {
		code, body := status(t, http.MethodGet, base+path, "")
		require.Equal(t, http.StatusOK, code, path)
		require.Contains(t, body, want, path)
	}
	code, _ := status(t, http.MethodGet, base+"/api/v1/write", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)

	reloads := func() float64 {
		v, err := scrapeValue(addr, "/metrics", "anomaly_exporter_config_last_reload_successful")
		require.NoError(t, err)
		return v
	}
	require.Equal(t, 1.0, reloads())

	// A broken file is refused over HTTP and by SIGHUP; the old configuration stays in force.
	require.NoError(t, os.WriteFile(cfgPath, []byte("rules:\n  - selectr: '{job=\"a\"}'\n"), 0o644))
	code, body := status(t, http.MethodPost, base+"/-/reload", "")
	require.Equal(t, http.StatusInternalServerError, code)
	require.Contains(t, body, "line 2")
	require.Equal(t, 0.0, reloads())

	require.NoError(t, os.WriteFile(cfgPath, []byte("rules:\n  - selector: '{job=\"b\"}'\n"), 0o644))
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	eventually(t, 10*time.Second, "SIGHUP reload", func() error {
		if reloads() != 1 {
			return context.DeadlineExceeded
		}
		return nil
	})
	code, _ = status(t, http.MethodGet, base+"/-/reload", "")
	require.Equal(t, http.StatusMethodNotAllowed, code)

	// SIGTERM: in-flight requests finish, the process exits 0.
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("exporter did not exit after SIGTERM")
	}
	require.NoError(t, p.err, "exit status after SIGTERM")
}

func TestServerLifecycleDisabled(t *testing.T) {
	requireE2E(t)
	addr, _ := startExporter(t, "")
	code, _ := status(t, http.MethodPost, "http://"+addr+"/-/reload", "")
	require.Equal(t, http.StatusForbidden, code)
}

func TestServerBasicAuth(t *testing.T) {
	requireE2E(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600))
	addr, _ := startExporterNoWait(t, "--web.config.file="+web)
	base := "http://" + addr
	eventually(t, 20*time.Second, "exporter up", func() error {
		_, err := http.Get(base + "/-/healthy")
		return err
	})
	for _, path := range []string{"/metrics", "/scores", "/api/v1/write"} {
		code, _ := status(t, http.MethodGet, base+path, "")
		require.Equal(t, http.StatusUnauthorized, code, path)
		code, _ = status(t, http.MethodGet, base+path, "", "prom", "wrong")
		require.Equal(t, http.StatusUnauthorized, code, path)
	}
	code, _ := status(t, http.MethodGet, base+"/metrics", "", "prom", "s3cret")
	require.Equal(t, http.StatusOK, code)
	code, _ = status(t, http.MethodPost, base+"/api/v1/write", "", "prom", "s3cret")
	require.Equal(t, http.StatusBadRequest, code, "authenticated: an empty body reaches the handler")
}

// startExporterNoWait starts the exporter without polling /-/ready (which may need credentials).
func startExporterNoWait(t *testing.T, extra ...string) (string, *process) {
	t.Helper()
	addr := freePort(t)
	p := start(t, "anomaly_exporter", exporterBinary(t), append([]string{"--web.listen-address=" + addr, "--storage.path=" + t.TempDir()}, extra...)...)
	return addr, p
}
