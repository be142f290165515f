// Package loadgen sends Prometheus remote-write traffic that looks like a real fleet (Kubernetes
// label sets, counters and gauges with daily and weekly seasons and noise) at a chosen rate, and
// reports what the receiver accepted, how fast it answered and what the sending cost. It exists so
// that the exporter's cost per sample and per series is measured, and compared with Prometheus,
// on traffic whose shape and timestamps a receiver would really see, without the generator itself
// being the bottleneck: every series' labels are encoded once, and a request in steady state only
// encodes timestamps and values into reused buffers.
//
// Values are pure functions of the seed, the series and the sample time, so runs are
// reproducible, a run can continue where a previous process stopped (counters stay monotone), and
// history can be fed time-compressed (a week of 5-minute samples in 2016 rounds).
package loadgen

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Protocol is the remote-write protocol version sent; receivers tell them apart by Content-Type.
type Protocol int

const (
	// RW1 is remote write 1.0 (prometheus.WriteRequest), what every sender speaks.
	RW1 Protocol = 1
	// RW2 is remote write 2.0 (io.prometheus.write.v2.Request): interned symbols and per-series
	// metadata, sent by Prometheus 3 when configured.
	RW2 Protocol = 2
)

// ParseProtocol accepts "1", "1.0", "2" and "2.0", the forms operators type on a command line.
func ParseProtocol(s string) (Protocol, error) {
	switch strings.TrimSpace(s) {
	case "1", "1.0":
		return RW1, nil
	case "2", "2.0":
		return RW2, nil
	}
	return 0, fmt.Errorf("unknown remote-write protocol %q, want 1 or 2", s)
}

// String is the version as the specs name it.
func (p Protocol) String() string {
	switch p {
	case RW1:
		return "1.0"
	case RW2:
		return "2.0"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// ContentType is the header receivers negotiate the protocol from.
func (p Protocol) ContentType() string {
	if p == RW2 {
		return "application/x-protobuf;proto=io.prometheus.write.v2.Request"
	}
	return "application/x-protobuf"
}

// versionHeader is X-Prometheus-Remote-Write-Version, as Prometheus sends it.
func (p Protocol) versionHeader() string {
	if p == RW2 {
		return "2.0.0"
	}
	return "0.1.0"
}

// Defaults of the Options fields whose zero value is not a useful setting. They follow what a
// Prometheus sender does by default (2000 samples per request, a 15s scrape interval) and the
// label sets of a typical Kubernetes workload.
const (
	DefaultSeries           = 10000
	DefaultLabelsPerSeries  = 8
	DefaultMetricNames      = 50
	DefaultCounterFraction  = 0.5
	DefaultSamplesPerSeries = 1
	DefaultSeriesPerRequest = 2000
	DefaultConcurrency      = 4
	DefaultStep             = 15 * time.Second
	DefaultTimeout          = 30 * time.Second
)

// MinLabelsPerSeries is the fewest labels that still make every series unique: the metric name
// and an instance.
const MinLabelsPerSeries = 2

// Options describe the traffic and when to stop. Fields left at zero take the Default* values,
// except CounterFraction (0 means no counters: use DefaultOptions for the defaults) and the
// bounds. At least one bound (Duration, Requests or Rounds) must be set, so that no run can go on
// by accident.
type Options struct {
	// Protocol is the remote-write version sent. Zero means RW1.
	Protocol Protocol
	// URL is the receiver's remote-write endpoint, e.g. http://127.0.0.1:9700/api/v1/write.
	URL string

	// Series is how many distinct series are sent, each with SamplesPerSeries samples per round.
	Series int
	// LabelsPerSeries counts __name__ too: 8 gives __name__, code, container, instance, job,
	// method, namespace and pod; fewer drop from the end of that list (the instance then becomes
	// unique per series), more add cluster, env, region, team, zone and then label_N.
	LabelsPerSeries int
	// MetricNames is how many distinct metric names the series share, cycled through in order.
	MetricNames int
	// CounterFraction is the share of metric names that are counters (named *_total, monotone,
	// typed COUNTER in RW 2.0 metadata); the rest are gauges.
	CounterFraction float64
	// SamplesPerSeries is how many consecutive samples of each series one request carries.
	SamplesPerSeries int
	// SeriesPerRequest is how many series one request carries; Prometheus sends 2000 samples per
	// request by default.
	SeriesPerRequest int
	// Concurrency is the number of workers, each with one request in flight. Each series belongs
	// to one worker, so its samples arrive in order.
	Concurrency int
	// Churn is how many series never sent before are sent after every round, once each, with
	// SamplesPerSeries samples at the round's sample times: the new pods and containers of a
	// fleet that keeps rolling out. They come on top of Series, which stay the same. 0: none.
	Churn int
	// HostileInterval, when set, sends one request of HostileRequests every interval besides the
	// load, in turn, and counts the answers that are not the ones owed. 0: none.
	HostileInterval time.Duration
	// Rate bounds the samples sent per second over all workers; 0 sends as fast as the receiver
	// answers.
	Rate float64

	// Duration stops sending new requests after this long; those in flight finish. 0: no bound.
	Duration time.Duration
	// Requests stops after this many requests in total. 0: no bound.
	Requests int64
	// Rounds stops each worker after this many rounds over its series. 0: no bound.
	Rounds int64

	// Start is the timestamp of the first sample. Zero means now, truncated to Step.
	Start time.Time
	// Step is the sample time between consecutive samples of a series: a round carrying
	// SamplesPerSeries samples advances time by SamplesPerSeries×Step, whatever the wall clock
	// does, so that history can be fed faster than real time.
	Step time.Duration
	// Seed makes the label values and the values reproducible.
	Seed uint64

	// Timeout bounds one request, so that a stuck receiver does not stop the run from ending.
	Timeout time.Duration
	// Client sends the requests. Nil: a client with one kept-alive connection per worker, no
	// proxy (load is meant for the receiver, not for whatever HTTP_PROXY points at) and no
	// transparent compression.
	Client *http.Client
	// UserAgent is sent with every request. Empty: "anomaly_exporter-loadgen".
	UserAgent string
}

// DefaultOptions are the options with every default filled in, without a URL or a bound.
func DefaultOptions() Options {
	return Options{
		Protocol:         RW1,
		Series:           DefaultSeries,
		LabelsPerSeries:  DefaultLabelsPerSeries,
		MetricNames:      DefaultMetricNames,
		CounterFraction:  DefaultCounterFraction,
		SamplesPerSeries: DefaultSamplesPerSeries,
		SeriesPerRequest: DefaultSeriesPerRequest,
		Concurrency:      DefaultConcurrency,
		Step:             DefaultStep,
		Timeout:          DefaultTimeout,
	}
}

// withDefaults fills the zero fields and checks the result.
func (o Options) withDefaults(now time.Time) (Options, error) {
	if o.Protocol == 0 {
		o.Protocol = RW1
	}
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	set(&o.Series, DefaultSeries)
	set(&o.LabelsPerSeries, DefaultLabelsPerSeries)
	set(&o.MetricNames, DefaultMetricNames)
	set(&o.SamplesPerSeries, DefaultSamplesPerSeries)
	set(&o.SeriesPerRequest, DefaultSeriesPerRequest)
	set(&o.Concurrency, DefaultConcurrency)
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = "anomaly_exporter-loadgen"
	}
	if o.Start.IsZero() {
		o.Start = now.Truncate(o.Step)
	}

	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if o.Protocol != RW1 && o.Protocol != RW2 {
		bad("protocol %d: want 1 or 2", int(o.Protocol))
	}
	if o.URL == "" {
		bad("no URL to send to")
	}
	if o.Series < 0 || o.MetricNames < 0 || o.SamplesPerSeries < 0 || o.SeriesPerRequest < 0 || o.Concurrency < 0 {
		bad("series, metric names, samples per series, series per request and concurrency must be positive")
	}
	if o.Churn < 0 || o.HostileInterval < 0 {
		bad("churn and hostile interval cannot be negative")
	}
	if o.LabelsPerSeries < MinLabelsPerSeries {
		bad("%d labels per series: at least %d are needed to keep series unique", o.LabelsPerSeries, MinLabelsPerSeries)
	}
	if o.CounterFraction < 0 || o.CounterFraction > 1 {
		bad("counter fraction %g: want 0 to 1", o.CounterFraction)
	}
	if o.Rate < 0 || o.Duration < 0 || o.Requests < 0 || o.Rounds < 0 {
		bad("rate, duration, requests and rounds cannot be negative")
	}
	if o.Duration == 0 && o.Requests == 0 && o.Rounds == 0 {
		bad("no bound: set a duration, a request count or a round count")
	}
	if o.Step < time.Millisecond {
		bad("time step %s: at least 1ms, the resolution of sample timestamps", o.Step)
	}
	if o.Concurrency > o.Series && o.Series > 0 {
		o.Concurrency = o.Series
	}
	return o, errors.Join(errs...)
}
