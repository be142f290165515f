package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Generator holds the prebuilt requests and the position of every worker, so that one generator
// can run several times (prime, then measure) and continue its series' timestamps each time.
type Generator struct {
	opts         Options
	client       *http.Client
	ownTransport *http.Transport
	workers      []*worker
	startMs      int64
	stepMs       int64
	// Prepare is how long building the series and encoding their labels took, spent once
	// before the first run and not part of any report.
	Prepare time.Duration
}

// worker sends a fixed, contiguous range of the series, chunk by chunk, in order: each series
// has one worker, so its samples are never reordered by concurrency.
type worker struct {
	g      *Generator
	chunks []chunk
	next   int   // the chunk the next request carries
	round  int64 // the round of the next request
	enc    *encoder
	hdr    http.Header
	bodies sync.WaitGroup // request bodies the transport still holds
	st     workerStats
	// The worker's share of Options.Churn: churn series after every round, at offset churnOff
	// of each round's block of new series; built with churnB.
	churn, churnOff int
	churnB          *chunkBuilder
}

// workerStats are one worker's counts during one run.
type workerStats struct {
	requests, samples, accepted, bytes, rawBytes, errors int64
	newSeries                                            int64
	status                                               map[int]int64
	firstErr                                             string
	lat                                                  latencies
	rounds                                               int64
}

// New builds the series of o and encodes what never changes in their requests.
func New(o Options) (*Generator, error) {
	began := time.Now()
	o, err := o.withDefaults(began)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %w", err)
	}
	g := &Generator{opts: o, client: o.Client, startMs: o.Start.UnixMilli(), stepMs: o.Step.Milliseconds()}
	if g.client == nil {
		g.ownTransport = &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: o.Concurrency,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		}
		g.client = &http.Client{Transport: g.ownTransport}
	}
	names := metricNames(o.MetricNames, o.CounterFraction)
	for w := range o.Concurrency {
		lo, hi := w*o.Series/o.Concurrency, (w+1)*o.Series/o.Concurrency
		wk := &worker{g: g, enc: newEncoder(o.Protocol, o.SamplesPerSeries), hdr: http.Header{
			"Content-Type":                      {o.Protocol.ContentType()},
			"Content-Encoding":                  {"snappy"},
			"User-Agent":                        {o.UserAgent},
			"X-Prometheus-Remote-Write-Version": {o.Protocol.versionHeader()},
		}}
		b := &chunkBuilder{p: o.Protocol, names: names}
		for c := lo; c < hi; c += o.SeriesPerRequest {
			wk.chunks = append(wk.chunks, b.build(&o, c, min(c+o.SeriesPerRequest, hi)))
		}
		wk.churnOff = w * o.Churn / o.Concurrency
		wk.churn = (w+1)*o.Churn/o.Concurrency - wk.churnOff
		wk.churnB = b
		if len(wk.chunks) > 0 {
			g.workers = append(g.workers, wk)
		}
	}
	g.Prepare = time.Since(began)
	return g, nil
}

// Close releases the idle connections of the generator's own client.
func (g *Generator) Close() {
	if g.ownTransport != nil {
		g.ownTransport.CloseIdleConnections()
	}
}

// Run builds one generator, runs it once and closes it.
func Run(ctx context.Context, o Options) (*Report, error) {
	g, err := New(o)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	return g.Run(ctx)
}

// Run sends until a bound of the options is reached or ctx is done, and reports. Reaching the
// duration stops new requests and lets those in flight finish; ctx being done cancels them too,
// and Run then returns the report so far with ctx's error. Requests that fail are counted, not
// retried: the series' next samples carry on, later in time.
func (g *Generator) Run(ctx context.Context) (*Report, error) {
	o := &g.opts
	issue := ctx
	if o.Duration > 0 {
		var cancel context.CancelFunc
		issue, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	var (
		claimed atomic.Int64
		pace    *pacer
		wg      sync.WaitGroup
	)
	if o.Rate > 0 {
		pace = &pacer{per: float64(time.Second) / o.Rate}
	}
	user0, sys0 := CPUTime()
	began := time.Now()
	for _, w := range g.workers {
		w.st = workerStats{status: map[int]int64{}}
		wg.Go(func() { w.run(issue, ctx, &claimed, pace) })
	}
	// The hostile requests go on while the workers do.
	var hostile hostileStats
	hctx, stopHostile := context.WithCancel(issue)
	var hwg sync.WaitGroup
	if o.HostileInterval > 0 {
		hwg.Go(func() { g.runHostile(hctx, &hostile) })
	}
	wg.Wait()
	stopHostile()
	hwg.Wait()
	elapsed := time.Since(began)
	user1, sys1 := CPUTime()

	r := &Report{
		Protocol: o.Protocol, URL: o.URL, Series: o.Series, Workers: len(g.workers),
		SeriesPerRequest: o.SeriesPerRequest, SamplesPerSeries: o.SamplesPerSeries,
		Elapsed: elapsed, Status: map[int]int64{}, UserCPU: user1 - user0, SystemCPU: sys1 - sys0,
	}
	var lat latencies
	var begun int64
	for i, w := range g.workers {
		s := &w.st
		r.Requests += s.requests
		r.Samples += s.samples
		r.Accepted += s.accepted
		r.Bytes += s.bytes
		r.RawBytes += s.rawBytes
		r.Errors += s.errors
		r.NewSeries += s.newSeries
		for c, n := range s.status {
			r.Status[c] += n
		}
		if r.FirstError == "" {
			r.FirstError = s.firstErr
		}
		lat.merge(&s.lat)
		if i == 0 || s.rounds < r.Rounds {
			r.Rounds = s.rounds
		}
		b := w.round // rounds begun, in this and earlier runs
		if w.next > 0 {
			b++
		}
		begun = max(begun, b)
	}
	r.Latency = lat.summary()
	r.HostileSent, r.HostileUnexpected = hostile.sent.Load(), hostile.unexpected.Load()
	if m := hostile.firstUnexpected.Load(); m != nil {
		r.FirstUnexpected = *m
	}
	r.NextStart = time.UnixMilli(g.startMs + begun*int64(o.SamplesPerSeries)*g.stepMs).UTC()
	return r, ctx.Err()
}

// run sends requests until issue is done or a bound is reached; requests are sent with ctx, so
// that the end of the duration does not cut the last ones short.
func (w *worker) run(issue, ctx context.Context, claimed *atomic.Int64, pace *pacer) {
	o := &w.g.opts
	for issue.Err() == nil {
		if o.Rounds > 0 && w.st.rounds >= o.Rounds {
			return
		}
		if o.Requests > 0 && claimed.Add(1) > o.Requests {
			return
		}
		c := &w.chunks[w.next]
		first := w.g.startMs + w.round*int64(o.SamplesPerSeries)*w.g.stepMs
		raw, n := w.enc.encode(c, first, w.g.stepMs)
		body := w.enc.snap.Encode(raw)
		if pace != nil && !pace.wait(issue, n) {
			return
		}
		w.send(ctx, body, n)
		w.st.rawBytes += int64(len(raw))
		w.next++
		if w.next == len(w.chunks) {
			if !w.sendChurn(issue, ctx, first, pace) {
				return
			}
			w.next = 0
			w.round++
			w.st.rounds++
		}
	}
}

// sendChurn sends the worker's share of the round's new series, at the round's sample times
// from first on. Series index Series+round×Churn+i is new in every round and every run of the
// generator, and its labels differ from every other series' (labelSet). It returns false when
// issue ended first.
func (w *worker) sendChurn(issue, ctx context.Context, first int64, pace *pacer) bool {
	o := &w.g.opts
	base := o.Series + int(w.round)*o.Churn + w.churnOff
	for lo := base; lo < base+w.churn; lo += o.SeriesPerRequest {
		if issue.Err() != nil {
			return false
		}
		c := w.churnB.build(o, lo, min(lo+o.SeriesPerRequest, base+w.churn))
		raw, n := w.enc.encode(&c, first, w.g.stepMs)
		body := w.enc.snap.Encode(raw)
		if pace != nil && !pace.wait(issue, n) {
			return false
		}
		w.send(ctx, body, n)
		w.st.rawBytes += int64(len(raw))
		w.st.newSeries += int64(len(c.series))
	}
	return true
}

// send posts one request and records its outcome.
func (w *worker) send(ctx context.Context, body []byte, samples int) {
	o := &w.g.opts
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, nil)
	if err != nil {
		w.fail(err)
		return
	}
	req.Header = w.hdr
	req.ContentLength = int64(len(body))
	req.Body = w.newBody(body)
	req.GetBody = func() (io.ReadCloser, error) { return w.newBody(body), nil }

	w.st.requests++
	w.st.samples += int64(samples)
	w.st.bytes += int64(len(body))
	start := time.Now()
	resp, err := w.g.client.Do(req)
	if err != nil {
		w.bodies.Wait()
		w.fail(err)
		return
	}
	var msg []byte
	if resp.StatusCode/100 != 2 && w.st.firstErr == "" {
		msg, _ = io.ReadAll(io.LimitReader(resp.Body, 512))
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	w.st.lat.record(time.Since(start))
	// The transport may still hold the body after answering (a receiver may answer before
	// reading it all); the encoder's buffers are reused only once it has let go.
	w.bodies.Wait()

	w.st.status[resp.StatusCode]++
	written, haveWritten := int64(0), false
	if o.Protocol == RW2 {
		if h := resp.Header.Get("X-Prometheus-Remote-Write-Samples-Written"); h != "" {
			written, err = strconv.ParseInt(h, 10, 64)
			haveWritten = err == nil
		}
	}
	switch {
	case haveWritten:
		w.st.accepted += written
	case resp.StatusCode/100 == 2:
		w.st.accepted += int64(samples)
	}
	if resp.StatusCode/100 != 2 && w.st.firstErr == "" {
		w.st.firstErr = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
	}
}

func (w *worker) fail(err error) {
	w.st.errors++
	if w.st.firstErr == "" {
		w.st.firstErr = err.Error()
	}
}

// newBody is a reader of b that tells the worker when the transport has closed it.
func (w *worker) newBody(b []byte) io.ReadCloser {
	w.bodies.Add(1)
	return &trackedBody{Reader: bytes.NewReader(b), done: w.bodies.Done}
}

type trackedBody struct {
	*bytes.Reader
	once sync.Once
	done func()
}

func (b *trackedBody) Close() error {
	b.once.Do(b.done)
	return nil
}

// pacer spaces requests over all workers so that samples go out at the target rate. A worker
// that falls behind does not make up for it in a burst: the rate is a ceiling.
type pacer struct {
	mu   sync.Mutex
	next time.Time
	per  float64 // nanoseconds per sample
}

// wait blocks until n samples may be sent, or returns false when ctx is done first.
func (p *pacer) wait(ctx context.Context, n int) bool {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(n) * p.per))
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
