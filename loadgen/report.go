package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Report is the outcome of one Run: what was sent, what the receiver accepted and how fast it
// answered, and what sending cost this process, so that a receiver's throughput is never
// reported without the generator's own share of the machine beside it.
type Report struct {
	// Protocol to SamplesPerSeries repeat the options the load had, so that a report read on its
	// own says what was measured.
	Protocol         Protocol
	URL              string
	Series           int
	Workers          int
	SeriesPerRequest int
	SamplesPerSeries int

	// Elapsed runs from the first request to the last response.
	Elapsed time.Duration
	// Requests counts requests that got a response or failed; Samples the samples in them.
	Requests, Samples int64
	// Accepted counts samples in 2xx responses, or as many as an RW 2.0 receiver says it wrote.
	Accepted int64
	// Bytes is the request bodies as sent (snappy); RawBytes the protobuf before compression.
	Bytes, RawBytes int64
	// Status counts responses by HTTP status code.
	Status map[int]int64
	// Errors counts requests without a response (connection refused, timeout); FirstError is
	// the first of them, or the body of the first non-2xx response, for diagnosis.
	Errors     int64
	FirstError string
	// Latency is from sending a request to having read its response, over all responses.
	Latency Latency
	// UserCPU and SystemCPU are this process's CPU time during the run, all goroutines included.
	UserCPU, SystemCPU time.Duration
	// Rounds is how many rounds every worker completed.
	Rounds int64
	// NewSeries counts the series of Options.Churn sent, each for the first time.
	NewSeries int64
	// HostileSent counts the hostile requests sent (Options.HostileInterval); HostileUnexpected
	// those not answered as owed, the first of them described in FirstUnexpected.
	HostileSent, HostileUnexpected int64
	FirstUnexpected                string
	// NextStart is the sample time a following run must start at (--time.start) for every
	// series' timestamps to keep increasing.
	NextStart time.Time
}

// Latency summarises request durations, as a sender's queue sees them: the tail, not the mean,
// decides how many requests a sender must keep in flight.
type Latency struct {
	// P50, P90 and P99 are quantiles, within 1.6%; Max is exact.
	P50, P90, P99, Max, Mean time.Duration
}

// AcceptedPerSecond is the receiver's throughput over the run.
func (r *Report) AcceptedPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Accepted) / r.Elapsed.Seconds()
}

// CPU is the generator's user and system CPU time.
func (r *Report) CPU() time.Duration { return r.UserCPU + r.SystemCPU }

// CPUPerMillion is the generator's CPU seconds per million samples sent: its cost, to be set
// against the receiver's.
func (r *Report) CPUPerMillion() float64 {
	if r.Samples == 0 {
		return 0
	}
	return r.CPU().Seconds() / float64(r.Samples) * 1e6
}

// WriteText writes the report for people, one figure per line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	line := func(k, format string, args ...any) {
		fmt.Fprintf(&b, "%-18s "+format+"\n", append([]any{k}, args...)...)
	}
	line("protocol", "remote write %s", r.Protocol)
	line("url", "%s", r.URL)
	line("series", "%d in %d workers, %d series and %d sample(s) per series per request",
		r.Series, r.Workers, r.SeriesPerRequest, r.SamplesPerSeries)
	line("elapsed", "%.2fs", r.Elapsed.Seconds())
	line("requests", "%d (%.1f/s), status %s", r.Requests, perSecond(float64(r.Requests), r.Elapsed), r.statusText())
	if r.Errors > 0 || r.FirstError != "" {
		line("errors", "%d without response; first problem: %s", r.Errors, r.FirstError)
	}
	line("samples sent", "%d", r.Samples)
	line("samples accepted", "%d (%.0f/s)", r.Accepted, r.AcceptedPerSecond())
	line("bytes sent", "%.1f MiB snappy, %.1f MiB protobuf (%.1f bytes/sample sent)",
		float64(r.Bytes)/(1<<20), float64(r.RawBytes)/(1<<20), ratio(float64(r.Bytes), float64(r.Samples)))
	line("latency", "p50 %s  p90 %s  p99 %s  max %s  mean %s",
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max), ms(r.Latency.Mean))
	line("loadgen cpu", "%.2fs (user %.2fs, system %.2fs), %.3f CPU-s per million samples",
		r.CPU().Seconds(), r.UserCPU.Seconds(), r.SystemCPU.Seconds(), r.CPUPerMillion())
	if r.NewSeries > 0 {
		line("new series", "%d (churn)", r.NewSeries)
	}
	if r.HostileSent > 0 {
		line("hostile requests", "%d, %d not answered as owed %s", r.HostileSent, r.HostileUnexpected, r.FirstUnexpected)
	}
	line("rounds", "%d complete; continue with --time.start=%s", r.Rounds, r.NextStart.UTC().Format(time.RFC3339Nano))
	_, err := io.WriteString(w, b.String())
	return err
}

func (r *Report) statusText() string {
	if len(r.Status) == 0 {
		return "none"
	}
	var parts []string
	for _, c := range slices.Sorted(maps.Keys(r.Status)) {
		parts = append(parts, fmt.Sprintf("%d×%d", c, r.Status[c]))
	}
	return strings.Join(parts, " ")
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 2, 64) + "ms" }

func perSecond(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// jsonReport is the JSON form: flat, durations in seconds, so that a shell script can pick a
// figure with sed or jq.
type jsonReport struct {
	Protocol             string           `json:"protocol"`
	URL                  string           `json:"url"`
	Series               int              `json:"series"`
	Workers              int              `json:"workers"`
	SeriesPerRequest     int              `json:"series_per_request"`
	SamplesPerSeries     int              `json:"samples_per_series"`
	ElapsedSeconds       float64          `json:"elapsed_seconds"`
	Requests             int64            `json:"requests"`
	Samples              int64            `json:"samples"`
	Accepted             int64            `json:"samples_accepted"`
	AcceptedPerSecond    float64          `json:"samples_accepted_per_second"`
	Bytes                int64            `json:"bytes"`
	RawBytes             int64            `json:"raw_bytes"`
	Status               map[string]int64 `json:"status"`
	Errors               int64            `json:"errors"`
	FirstError           string           `json:"first_error,omitempty"`
	LatencyP50           float64          `json:"latency_p50_seconds"`
	LatencyP90           float64          `json:"latency_p90_seconds"`
	LatencyP99           float64          `json:"latency_p99_seconds"`
	LatencyMax           float64          `json:"latency_max_seconds"`
	LatencyMean          float64          `json:"latency_mean_seconds"`
	UserCPU              float64          `json:"cpu_user_seconds"`
	SystemCPU            float64          `json:"cpu_system_seconds"`
	CPUSeconds           float64          `json:"cpu_seconds"`
	CPUPerMillionSamples float64          `json:"cpu_seconds_per_million_samples"`
	Rounds               int64            `json:"rounds"`
	NewSeries            int64            `json:"new_series"`
	HostileSent          int64            `json:"hostile_requests"`
	HostileUnexpected    int64            `json:"hostile_unexpected"`
	FirstUnexpected      string           `json:"first_unexpected,omitempty"`
	NextStart            string           `json:"next_start"`
	NextStartUnix        float64          `json:"next_start_unix"`
}

// MarshalJSON writes the report flat, with durations in seconds and the next start both in
// RFC 3339 and in Unix seconds.
func (r *Report) MarshalJSON() ([]byte, error) {
	st := make(map[string]int64, len(r.Status))
	for c, n := range r.Status {
		st[strconv.Itoa(c)] = n
	}
	return json.Marshal(jsonReport{
		Protocol: r.Protocol.String(), URL: r.URL, Series: r.Series, Workers: r.Workers,
		SeriesPerRequest: r.SeriesPerRequest, SamplesPerSeries: r.SamplesPerSeries,
		ElapsedSeconds: r.Elapsed.Seconds(), Requests: r.Requests, Samples: r.Samples,
		Accepted: r.Accepted, AcceptedPerSecond: r.AcceptedPerSecond(),
		Bytes: r.Bytes, RawBytes: r.RawBytes, Status: st, Errors: r.Errors, FirstError: r.FirstError,
		LatencyP50: r.Latency.P50.Seconds(), LatencyP90: r.Latency.P90.Seconds(), LatencyP99: r.Latency.P99.Seconds(),
		LatencyMax: r.Latency.Max.Seconds(), LatencyMean: r.Latency.Mean.Seconds(),
		UserCPU: r.UserCPU.Seconds(), SystemCPU: r.SystemCPU.Seconds(), CPUSeconds: r.CPU().Seconds(),
		CPUPerMillionSamples: r.CPUPerMillion(), Rounds: r.Rounds, NewSeries: r.NewSeries,
		HostileSent: r.HostileSent, HostileUnexpected: r.HostileUnexpected, FirstUnexpected: r.FirstUnexpected,
		NextStart: r.NextStart.UTC().Format(time.RFC3339Nano), NextStartUnix: float64(r.NextStart.UnixMilli()) / 1000,
	})
}
