package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir and returns their paths and
// a pool that trusts the certificate.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "anomaly-exporter-e2e"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// writeBody is a remote-write 1.0 request of one series with one sample at now.
func writeBody(t *testing.T, name string) []byte {
	t.Helper()
	req := &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{{
		Labels:  pbLabels("__name__", name, "job", "secure"),
		Samples: []prompb.Sample{{Timestamp: time.Now().UnixMilli(), Value: 1}},
	}}}
	raw, err := req.Marshal()
	require.NoError(t, err)
	return snappy.Encode(nil, raw)
}

// call sends one request with the client and returns the status and body.
func call(t *testing.T, c *http.Client, method, u string, body []byte, user, pass string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "snappy")
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestServerTLSAndBasicAuth: with TLS and basic auth in --web.config.file, the write, scores,
// metrics and lifecycle endpoints answer only over TLS and only with the right password; plain
// HTTP is refused; pprof is not served without --web.enable-pprof.
func TestServerTLSAndBasicAuth(t *testing.T) {
	requireE2E(t)
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+
		"\nbasic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600))
	addr, _ := startExporterNoWait(t, "--web.config.file="+web)

	tlsClient := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	base := "https://" + addr
	eventually(t, 20*time.Second, "exporter up over TLS", func() error {
		resp, err := tlsClient.Get(base + "/-/healthy")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	endpoints := []struct {
		method, path string
		body         []byte
		wantOK       int
	}{
		{http.MethodPost, "/api/v1/write", writeBody(t, "secure_gauge"), http.StatusNoContent},
		{http.MethodGet, "/scores", nil, http.StatusOK},
		{http.MethodGet, "/metrics", nil, http.StatusOK},
		{http.MethodPost, "/-/reload", nil, http.StatusForbidden},   // --web.enable-lifecycle is off
		{http.MethodGet, "/debug/pprof/", nil, http.StatusNotFound}, // --web.enable-pprof is off
	}
	for _, e := range endpoints {
		code, _ := call(t, tlsClient, e.method, base+e.path, e.body, "", "")
		require.Equal(t, http.StatusUnauthorized, code, "%s %s without credentials", e.method, e.path)
		code, _ = call(t, tlsClient, e.method, base+e.path, e.body, "prom", "wrong")
		require.Equal(t, http.StatusUnauthorized, code, "%s %s with a wrong password", e.method, e.path)
		code, _ = call(t, tlsClient, e.method, base+e.path, e.body, "nobody", "s3cret")
		require.Equal(t, http.StatusUnauthorized, code, "%s %s with an unknown user", e.method, e.path)
		code, body := call(t, tlsClient, e.method, base+e.path, e.body, "prom", "s3cret")
		require.Equal(t, e.wantOK, code, "%s %s with the right password: %s", e.method, e.path, body)

		// Plain HTTP to the TLS port is refused, credentials or not, and reaches no handler.
		code, body = call(t, &http.Client{Timeout: 5 * time.Second}, e.method, "http://"+addr+e.path, e.body, "prom", "s3cret")
		require.Equal(t, http.StatusBadRequest, code, "%s %s over plain HTTP", e.method, e.path)
		require.Contains(t, body, "HTTP request to an HTTPS server")
	}

	// A client that does not trust the certificate does not get through either.
	_, err = (&http.Client{Timeout: 5 * time.Second}).Get(base + "/metrics")
	require.ErrorContains(t, err, "certificate")

	// Only the one authenticated write reached the detector.
	code, body := call(t, tlsClient, http.MethodGet, base+"/metrics", nil, "prom", "s3cret")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `anomaly_exporter_remote_write_samples_received_total{protocol="1.0"} 1`+"\n")
	code, body = call(t, tlsClient, http.MethodGet, base+"/scores", nil, "prom", "s3cret")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, 1, strings.Count(body, "\nanomaly_score{"), body)
	require.Contains(t, body, `anomaly_metric="secure_gauge"`)
}

// TestServerPprofFlag: Go's profiles are served only with --web.enable-pprof, and then behind
// the same basic auth as every other endpoint.
func TestServerPprofFlag(t *testing.T) {
	requireE2E(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	web := filepath.Join(t.TempDir(), "web.yml")
	require.NoError(t, os.WriteFile(web, []byte("basic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600))
	c := &http.Client{Timeout: 10 * time.Second}
	for _, enabled := range []bool{false, true} {
		args := []string{"--web.config.file=" + web}
		if enabled {
			args = append(args, "--web.enable-pprof")
		}
		addr, _ := startExporterNoWait(t, args...)
		base := "http://" + addr
		eventually(t, 20*time.Second, "exporter up", func() error {
			resp, err := c.Get(base + "/-/healthy")
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
			code, _ := call(t, c, http.MethodGet, base+path, nil, "", "")
			require.Equal(t, http.StatusUnauthorized, code, "%s without credentials", path)
			code, body := call(t, c, http.MethodGet, base+path, nil, "prom", "s3cret")
			if !enabled {
				require.Equal(t, http.StatusNotFound, code, "%s without --web.enable-pprof", path)
				continue
			}
			require.Equal(t, http.StatusOK, code, "%s with --web.enable-pprof", path)
			require.NotEmpty(t, body)
		}
	}
}
