package loadgen

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anomaly-exporter/anomaly_exporter/remotewrite/wire"
)

// Hostile is one broken or hostile remote-write request, and the answer a receiver with the
// exporter's default limits owes it: 400, 405, 413 or 415 for what can never succeed, 204 for
// what is accepted and then skipped by the detector (non-finite values, timestamps outside the
// window, samples out of order). Soak and end-to-end tests mix them into ordinary traffic.
type Hostile struct {
	Name        string
	Method      string // "" is POST
	ContentType string // "" is remote write 1.0
	Body        []byte
	// Slow, instead of a request, opens a connection, sends the start of a request's headers and
	// trickles one byte every second for this long (slowloris); no answer is expected.
	Slow time.Duration
	// WantCode is the status the receiver must answer with; 0 for Slow.
	WantCode int
}

// HostileUserAgent starts the User-Agent of hostile requests, followed by the case's name in
// parentheses, so that a receiver's logs tell them from real traffic.
const HostileUserAgent = "anomaly_exporter-loadgen-hostile"

// hostileSample is one sample of a hand-built series.
type hostileSample struct {
	t int64
	v float64
}

// hostileV1 encodes a prometheus.WriteRequest of one series with the labels as given, in order,
// whatever they are, and snappy-compresses it.
func hostileV1(labels []string, samples ...hostileSample) []byte {
	var ts []byte
	for i := 0; i+1 < len(labels); i += 2 {
		var l []byte
		l = wire.AppendString(l, wire.Name, labels[i])
		l = wire.AppendString(l, wire.Value, labels[i+1])
		ts = protowire.AppendTag(ts, 1, protowire.BytesType)
		ts = protowire.AppendBytes(ts, l)
	}
	for _, s := range samples {
		var b []byte
		b = append(b, wire.SampleVal)
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(s.v))
		b = append(b, wire.SampleTime)
		b = protowire.AppendVarint(b, uint64(s.t))
		ts = protowire.AppendTag(ts, 2, protowire.BytesType)
		ts = protowire.AppendBytes(ts, b)
	}
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	req = protowire.AppendBytes(req, ts)
	return snappy.Encode(nil, req)
}

// HostileRequests returns the hostile requests, with timestamps around now; series names carry
// id so that successive sets do not share series.
func HostileRequests(now time.Time, id int) []Hostile {
	ms := now.UnixMilli()
	sfx := "_" + strconv.Itoa(id)
	name := func(n string) []string { return []string{"__name__", "hostile_" + n + sfx, "job", "hostile"} }
	many := name("wide")
	for i := range 10_000 {
		many = append(many, fmt.Sprintf("l%05d", 10_000-i), "v")
	}
	v2 := RW2.ContentType()
	staleNaN := math.Float64frombits(0x7ff0000000000002)
	valid := hostileV1(name("ok"), hostileSample{ms, 1})
	return []Hostile{
		{Name: "corrupt snappy", Body: []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0x00, 0x01}, WantCode: 400},
		{Name: "truncated protobuf", Body: snappy.Encode(nil, mustDecode(valid)[:9]), WantCode: 400},
		{Name: "garbage protobuf", Body: snappy.Encode(nil, []byte("\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage")), WantCode: 400},
		{Name: "decoded-length bomb", Body: snappy.Encode(nil, make([]byte, 40<<20)), WantCode: 413},
		{Name: "decoded length claims 4 GiB", Body: []byte{0xff, 0xff, 0xff, 0xff, 0x0f, 0x00}, WantCode: 413},
		{Name: "10k labels", Body: hostileV1(many, hostileSample{ms, 1}), WantCode: 400},
		{Name: "1 MB label value", Body: hostileV1(append(name("big"), "value", strings.Repeat("x", 1<<20)), hostileSample{ms, 1}), WantCode: 400},
		{Name: "empty label name", Body: hostileV1(append(name("empty"), "", "x"), hostileSample{ms, 1}), WantCode: 400},
		{Name: "duplicate label name", Body: hostileV1(append(name("dup"), "job", "again"), hostileSample{ms, 1}), WantCode: 400},
		{Name: "unsorted labels", Body: hostileV1([]string{"job", "hostile", "__name__", "hostile_unsorted" + sfx}, hostileSample{ms, 1}), WantCode: 204},
		{Name: "invalid UTF-8", Body: hostileV1(append(name("utf8"), "value", "a\xffb"), hostileSample{ms, 1}), WantCode: 400},
		{Name: "missing metric name", Body: hostileV1([]string{"job", "hostile"}, hostileSample{ms, 1}), WantCode: 400},
		{Name: "NaN, Inf and stale markers", Body: hostileV1(name("nonfinite"), hostileSample{ms - 3, math.NaN()}, hostileSample{ms - 2, math.Inf(1)},
			hostileSample{ms - 1, math.Inf(-1)}, hostileSample{ms, staleNaN}), WantCode: 204},
		{Name: "far future", Body: hostileV1(name("future"), hostileSample{ms + int64(100*365*24*time.Hour/time.Millisecond), 1}), WantCode: 204},
		{Name: "seconds instead of milliseconds", Body: hostileV1(name("seconds"), hostileSample{ms / 1000, 1}), WantCode: 204},
		{Name: "out of order and duplicate", Body: hostileV1(name("ooo"), hostileSample{ms, 1}, hostileSample{ms - 1000, 2}, hostileSample{ms, 3}), WantCode: 204},
		{Name: "counter going backwards", Body: hostileV1([]string{"__name__", "hostile_requests" + sfx + "_total", "job", "hostile"}, hostileSample{ms - 2000, 10}, hostileSample{ms - 1000, 20}, hostileSample{ms, 5}), WantCode: 204},
		{Name: "RW 2.0 symbol reference out of range", ContentType: v2, Body: snappy.Encode(nil, []byte{
			4<<3 | 2, 0, 4<<3 | 2, 8, '_', '_', 'n', 'a', 'm', 'e', '_', '_', // symbols "", "__name__"
			5<<3 | 2, 4, 1<<3 | 2, 2, 1, 9, // labels_refs 1, 9
		}), WantCode: 400},
		{Name: "unsupported content type", ContentType: "application/json", Body: []byte("{}"), WantCode: 415},
		{Name: "GET", Method: http.MethodGet, WantCode: 405},
		{Name: "slowloris", Slow: 5 * time.Second},
	}
}

func mustDecode(b []byte) []byte {
	d, err := snappy.Decode(nil, b)
	if err != nil {
		panic(err)
	}
	return d
}

// Send sends h to the remote-write URL and returns the status code (0 for Slow).
func (h *Hostile) Send(ctx context.Context, client *http.Client, rawURL string) (int, error) {
	if h.Slow > 0 {
		return 0, slowloris(ctx, rawURL, h.Slow)
	}
	method := h.Method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, strings.NewReader(string(h.Body)))
	if err != nil {
		return 0, err
	}
	ct := h.ContentType
	if ct == "" {
		ct = RW1.ContentType()
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("User-Agent", HostileUserAgent+" ("+h.Name+")")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// slowloris opens a plain connection to the URL's host and sends a request's headers one byte
// per second for d.
func slowloris(ctx context.Context, rawURL string, d time.Duration) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return err
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", u.Host)
	if err != nil {
		return err
	}
	defer conn.Close()
	head := "POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nX-Slow: "
	if _, err := io.WriteString(conn, head); err != nil {
		return nil // the server gave up on us: what it should do
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(d)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-end:
			return nil
		case <-tick.C:
			if _, err := conn.Write([]byte{'a'}); err != nil {
				return nil
			}
		}
	}
}

// hostileStats counts the hostile requests of a run.
type hostileStats struct {
	sent, unexpected atomic.Int64
	firstUnexpected  atomic.Pointer[string]
}

// runHostile sends the hostile requests in turn, one every interval, until ctx is done. Each
// pass over them builds them anew, with fresh timestamps and series names.
func (g *Generator) runHostile(ctx context.Context, st *hostileStats) {
	o := &g.opts
	t := time.NewTicker(o.HostileInterval)
	defer t.Stop()
	var set []Hostile
	next := 0
	for pass := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if next == len(set) {
			set, next = HostileRequests(time.Now(), pass), 0
			pass++
		}
		h := &set[next]
		next++
		rctx, cancel := context.WithTimeout(ctx, o.Timeout)
		code, err := h.Send(rctx, g.client, o.URL)
		cancel()
		if ctx.Err() != nil {
			return
		}
		st.sent.Add(1)
		if h.Slow > 0 {
			continue
		}
		if err != nil || code != h.WantCode {
			st.unexpected.Add(1)
			msg := fmt.Sprintf("%s: got %d (%v), want %d", h.Name, code, err, h.WantCode)
			st.firstUnexpected.CompareAndSwap(nil, &msg)
		}
	}
}
