package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/prompb"
	"github.com/stretchr/testify/require"
)

// slowConn is a client that sends its request a byte at a time and records how the server ended
// it: the first line it answered, or how the connection closed.
type slowConn struct {
	ended  time.Duration // since the start, when the server answered or closed
	answer string        // the status line, if the server answered
	err    error         // how reading the answer failed, if it did (EOF: closed)
}

// slowloris opens a connection, sends head at once, then one byte of trickle every interval until
// the server answers or closes it, or giveUp passes.
func slowloris(t *testing.T, addr, head string, trickle byte, interval, giveUp time.Duration) *slowConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	sc := &slowConn{}
	start := time.Now()
	go func() {
		_, _ = io.WriteString(conn, head)
		for time.Since(start) < giveUp {
			time.Sleep(interval)
			if _, err := conn.Write([]byte{trickle}); err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { conn.Close() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = conn.SetReadDeadline(start.Add(giveUp))
		line, err := bufio.NewReader(conn).ReadString('\n')
		sc.ended = time.Since(start)
		sc.answer, sc.err = strings.TrimSpace(line), err
	}()
	t.Cleanup(func() { <-done })
	return sc
}

// TestSlowClients: clients that send their headers or their body a byte at a time (slowloris) are
// cut off at --web.read-header-timeout and --web.read-timeout, a slow body with a 503 its sender
// may retry; while they hang on, other senders are served as usual, even with every decode slot
// of --remote-write.max-concurrent-requests outnumbered by the slow ones.
func TestSlowClients(t *testing.T) {
	requireE2E(t)
	addr, p := startExporter(t, "", "--web.read-header-timeout=1s", "--web.read-timeout=3s", "--remote-write.max-concurrent-requests=2")

	const perKind = 10
	var mu sync.Mutex
	var slowHeaders, slowBodies []*slowConn
	var wg sync.WaitGroup
	for range perKind {
		wg.Go(func() {
			h := slowloris(t, addr, "POST /api/v1/write HTTP/1.1\r\nHost: "+addr+"\r\nX-Slow: ", 'a', 200*time.Millisecond, 8*time.Second)
			b := slowloris(t, addr, "POST /api/v1/write HTTP/1.1\r\nHost: "+addr+"\r\nContent-Type: application/x-protobuf\r\n"+
				"Content-Encoding: snappy\r\nContent-Length: 100000\r\n\r\n", 0, 200*time.Millisecond, 8*time.Second)
			mu.Lock()
			slowHeaders, slowBodies = append(slowHeaders, h), append(slowBodies, b)
			mu.Unlock()
		})
	}
	wg.Wait()

	// Meanwhile, an ordinary sender: every request answered at once.
	var worst time.Duration
	t0 := time.Now().UnixMilli()
	for i := range 30 {
		start := time.Now()
		remoteWrite(t, addr, []prompb.TimeSeries{{
			Labels: pbLabels("__name__", "ordinary", "job", "fast"), Samples: []prompb.Sample{{Timestamp: t0 + int64(i)*1000, Value: float64(i)}},
		}})
		worst = max(worst, time.Since(start))
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("30 ordinary requests beside %d slow-header and %d slow-body clients: slowest answered in %s", perKind, perKind, worst)
	require.Less(t, worst, time.Second)
	require.Equal(t, 30.0, metricValue(t, addr, "anomaly_exporter_detector_samples_scored_total"))

	// The slow clients were cut off by the timeouts, not by giving up themselves.
	eventually(t, 10*time.Second, "slow clients ended", func() error {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range append(append([]*slowConn{}, slowHeaders...), slowBodies...) {
			if c.ended == 0 {
				return errors.New("a slow client is still connected")
			}
		}
		return nil
	})
	for _, c := range slowHeaders {
		require.False(t, errors.Is(c.err, os.ErrDeadlineExceeded), "slow headers: the client gave up before the server")
		require.Less(t, c.ended, 3*time.Second, "slow headers are cut at the read-header timeout")
	}
	for _, c := range slowBodies {
		require.False(t, errors.Is(c.err, os.ErrDeadlineExceeded), "slow body: the client gave up before the server")
		require.Less(t, c.ended, 5*time.Second, "slow bodies are cut at the read timeout")
		if c.answer != "" {
			require.Equal(t, fmt.Sprintf("HTTP/1.1 %d %s", http.StatusServiceUnavailable, http.StatusText(http.StatusServiceUnavailable)), c.answer)
		}
	}
	t.Logf("slow headers cut after %s..%s; slow bodies cut after %s..%s, %d of them answered 503",
		minEnded(slowHeaders), maxEnded(slowHeaders), minEnded(slowBodies), maxEnded(slowBodies), answered(slowBodies))
	require.Positive(t, metricValue(t, addr, "anomaly_exporter_remote_write_requests_shed_total", "reason=read_timeout"))
	require.Zero(t, metricValue(t, addr, "anomaly_exporter_remote_write_requests_shed_total", "reason=concurrency"))

	log, err := os.ReadFile(p.log)
	require.NoError(t, err)
	require.Less(t, bytes.Count(log, []byte("\n")), 200, "the slow clients did not flood the log")
}

func minEnded(cs []*slowConn) time.Duration {
	m := cs[0].ended
	for _, c := range cs {
		m = min(m, c.ended)
	}
	return m.Round(10 * time.Millisecond)
}

func maxEnded(cs []*slowConn) time.Duration {
	var m time.Duration
	for _, c := range cs {
		m = max(m, c.ended)
	}
	return m.Round(10 * time.Millisecond)
}

func answered(cs []*slowConn) int {
	n := 0
	for _, c := range cs {
		if c.answer != "" {
			n++
		}
	}
	return n
}
