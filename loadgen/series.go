package loadgen

import (
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file decides what each series is: its labels, and its value at any sample time. Both are
// pure functions of the seed and the series index, so that nothing but a few parameters per series
// is kept, every worker and every process agrees on them, and a run can continue another.

// metricKind is one family of metric the generated fleet exposes.
type metricKind struct {
	name    string // base name; counters end in _total
	help    string
	scale   float64 // typical value of a gauge, or per-second rate of a counter
	integer bool    // gauge values are whole numbers (goroutines, replicas)
}

// counterKinds and gaugeKinds are the metric families of a typical service fleet: HTTP and gRPC
// traffic, container and node resources, business events, CI and security signals.
var counterKinds = []metricKind{
	{"http_requests_total", "Total number of HTTP requests by method and status code.", 40, false},
	{"container_cpu_usage_seconds_total", "Cumulative CPU time consumed in seconds.", 0.25, false},
	{"grpc_server_handled_total", "Total number of RPCs completed on the server.", 25, false},
	{"container_network_receive_bytes_total", "Cumulative count of bytes received.", 2e5, false},
	{"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted.", 1.5e5, false},
	{"orders_created_total", "Orders created.", 2, false},
	{"payments_processed_total", "Payments processed, by outcome.", 1.5, false},
	{"login_failures_total", "Failed login attempts.", 0.3, false},
	{"kafka_consumer_records_consumed_total", "Records consumed from Kafka.", 120, false},
	{"process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", 0.1, false},
	{"ci_pipeline_runs_total", "CI pipeline runs finished.", 0.02, false},
	{"container_fs_writes_bytes_total", "Cumulative count of bytes written.", 5e4, false},
}

var gaugeKinds = []metricKind{
	{"container_memory_working_set_bytes", "Current working set in bytes.", 3e8, false},
	{"go_goroutines", "Number of goroutines that currently exist.", 120, true},
	{"http_requests_in_flight", "Requests currently being served.", 6, true},
	{"node_load1", "1m load average.", 1.8, false},
	{"process_resident_memory_bytes", "Resident memory size in bytes.", 1.5e8, false},
	{"job_queue_length", "Jobs waiting in the queue.", 35, true},
	{"db_connections_open", "Open database connections.", 18, true},
	{"ci_build_duration_seconds", "Duration of the last CI build.", 420, false},
	{"http_request_duration_seconds_p99", "99th percentile of request latency over the last minute.", 0.35, false},
	{"kube_deployment_status_replicas_available", "Available replicas per deployment.", 4, true},
}

// metricName is one of the Options.MetricNames distinct names.
type metricName struct {
	metricKind
	counter bool
}

// metricNames returns n names, the first round(n×counterFraction) of them counters. Past the
// tables' length a service prefix keeps names distinct ("svc2_http_requests_total").
func metricNames(n int, counterFraction float64) []metricName {
	nc := int(math.Round(float64(n) * counterFraction))
	out := make([]metricName, 0, n)
	for i := range n {
		kinds, j, counter := counterKinds, i, true
		if i >= nc {
			kinds, j, counter = gaugeKinds, i-nc, false
		}
		k := kinds[j%len(kinds)]
		if c := j / len(kinds); c > 0 {
			k.name = "svc" + strconv.Itoa(c+1) + "_" + k.name
		}
		out = append(out, metricName{metricKind: k, counter: counter})
	}
	return out
}

var (
	namespaces  = []string{"default", "payments", "checkout", "search", "identity", "monitoring", "ingress-nginx", "kube-system", "data", "ci"}
	deployments = []string{"api-gateway", "checkout-service", "payment-service", "cart", "catalog", "search-api", "user-service",
		"auth-service", "notification-worker", "order-processor", "inventory", "recommendation", "frontend", "billing",
		"shipping", "ledger", "fraud-detector", "report-builder", "image-resizer", "session-store"}
	methods  = []string{"GET", "POST", "PUT", "DELETE"}
	codes    = []string{"200", "201", "304", "404", "429", "500"}
	codeRate = []float64{1, 0.15, 0.08, 0.03, 0.005, 0.002} // traffic share of each code
	clusters = []string{"prod-eu-west-1", "prod-us-east-1", "prod-ap-southeast-1", "staging-eu-west-1"}
	regions  = []string{"eu-west-1", "us-east-1", "ap-southeast-1", "eu-west-1"}
	teams    = []string{"platform", "payments", "growth", "core", "data"}
)

// seriesPerPod is how many series of one metric name a pod has: one per method and code.
var seriesPerPod = len(methods) * len(codes)

// label is one name and value pair.
type label struct{ name, value string }

// labelSet writes the labels of series i, sorted by name as the remote-write specs require.
//
// Series i has metric name names[i%len(names)] and is the k-th series (k = i/len(names)) of that
// name; k picks a method and a code, and a pod (k/24), whose index sets its namespace,
// deployment and instance. With all 8 labels the instance is the pod's address, shared by its 24
// series; with fewer, the instance's port also depends on k, so that every series stays unique.
func labelSet(dst []label, names []metricName, i, nlabels int) []label {
	name := names[i%len(names)]
	k := i / len(names)
	m, c, r := k%len(methods), (k/len(methods))%len(codes), k/seriesPerPod
	dep := deployments[(r/len(namespaces))%len(deployments)]
	port := 8080
	if nlabels < DefaultLabelsPerSeries {
		port = 9100 + k%seriesPerPod
	}
	ip := r + 1
	instance := "10." + strconv.Itoa(ip>>16&255) + "." + strconv.Itoa(ip>>8&255) + "." + strconv.Itoa(ip&255) + ":" + strconv.Itoa(port)

	dst = dst[:0]
	add := func(n, v string) {
		if len(dst) < nlabels {
			dst = append(dst, label{n, v})
		}
	}
	add("__name__", name.name)
	add("instance", instance)
	add("job", dep)
	add("namespace", namespaces[r%len(namespaces)])
	add("pod", podName(dep, r))
	add("container", dep)
	add("method", methods[m])
	add("code", codes[c])
	cl := r % len(clusters)
	add("cluster", clusters[cl])
	add("env", strings.SplitN(clusters[cl], "-", 2)[0])
	add("region", regions[cl])
	add("team", teams[(r/len(namespaces))%len(teams)])
	add("zone", regions[cl]+string(rune('a'+r%3)))
	for n := len(dst); n < nlabels; n++ {
		dst = append(dst, label{"label_" + strconv.Itoa(n+1), "value-" + strconv.Itoa(r%100)})
	}
	sort.Slice(dst, func(a, b int) bool { return dst[a].name < dst[b].name })
	return dst
}

// podAlphabet is the alphabet Kubernetes uses for generated name suffixes (no vowels, no
// look-alikes).
const podAlphabet = "bcdfghjklmnpqrstvwxz2456789"

// podName is a Deployment's pod name: deployment-<replicaset hash>-<pod suffix>.
func podName(dep string, r int) string {
	var b [64]byte
	out := append(b[:0], dep...)
	out = append(out, '-')
	h := mix64(uint64(r/3) ^ 0x5eed) // three pods per replica set
	for range 10 {
		out = append(out, podAlphabet[h%uint64(len(podAlphabet))])
		h /= uint64(len(podAlphabet))
	}
	out = append(out, '-')
	h = mix64(uint64(r))
	for range 5 {
		out = append(out, podAlphabet[h%uint64(len(podAlphabet))])
		h /= uint64(len(podAlphabet))
	}
	return string(out)
}

// series holds what the values of one series are computed from.
type series struct {
	key     uint64  // noise key
	base    float64 // typical value (gauge) or per-second rate (counter)
	c0      float64 // counter offset
	eta     float64 // counter noise amplitude, in seconds of base rate; see counterValue
	amp     float32 // daily amplitude: 0 has no daily season
	weekly  float32 // 1 has the weekday/weekend pattern, 0 none
	noise   float32 // relative noise of a gauge
	group   uint8   // time zone group
	counter bool
	integer bool
}

// newSeries draws the parameters of series i from the seed. Some series have no daily season and
// half have no weekly one, so that a detector finding out per series whether a season is there has
// something to find out.
func newSeries(seed uint64, i int, name metricName, code string, step time.Duration) series {
	h := mix64(seed ^ mix64(uint64(i)+0x9e3779b97f4a7c15))
	u := func() float64 { // uniform in [0,1), a fresh draw each call
		h = mix64(h + 0x9e3779b97f4a7c15)
		return float64(h>>11) / (1 << 53)
	}
	s := series{
		key:     mix64(h ^ 0xabcdef),
		counter: name.counter,
		integer: name.integer,
	}
	s.base = name.scale * math.Exp((u()*2-1)*1.2)
	if name.counter {
		for j, c := range codes {
			if c == code {
				s.base *= codeRate[j]
			}
		}
	}
	if u() >= 0.2 {
		s.amp = float32(0.2 + 0.5*u())
	} else {
		u()
	}
	if u() < 0.5 {
		s.weekly = 1
	}
	s.noise = float32(0.02 + 0.18*u())
	s.group = uint8(u() * numGroups)
	s.c0 = s.base * 86400 * u()
	// The lowest rate of the series' shape, times a step, bounds how far noise may pull a counter
	// back between two samples without it ever decreasing.
	minShape := (1 - float64(s.weekly) + float64(s.weekly)*minWeekday) * (1 - float64(s.amp))
	s.eta = min(1, 4*float64(s.noise)) * 0.9 * minShape * step.Seconds()
	return s
}

// value is the series' value at sample time tms (Unix milliseconds), given the season of its
// group at that time.
func (s *series) value(z *season, tms int64) float64 {
	h := mix64(s.key ^ uint64(tms)*0x9e3779b97f4a7c15)
	a, w := float64(s.amp), float64(s.weekly)
	if s.counter {
		// The integral of the rate since the reference time, plus noise in [0, eta) seconds of the
		// base rate: consecutive samples are at least (minShape×step - eta)×base apart, so the
		// counter only grows, even across runs of different processes.
		integral := (1-w)*(z.t+a*z.sc) + w*(z.iw+a*z.iwc)
		return s.c0 + s.base*(integral+s.eta*float64(h>>11)/(1<<53))
	}
	// Irwin-Hall with four uniforms: close enough to normal, bounded to ±3.5σ.
	n := (float64(h&0xffff)+float64(h>>16&0xffff)+float64(h>>32&0xffff)+float64(h>>48))/65536 - 2
	v := s.base * (1 - w + w*z.wd) * (1 + a*z.cos) * (1 + float64(s.noise)*n*1.7320508075688772)
	if s.integer {
		v = math.Round(v)
	}
	return max(v, 0)
}

// Seasons. Traffic peaks at 14:00 local time, is lowest at 02:00, and is lower at the weekend.
// Series fall in time-zone groups, so that not every series peaks at the same hour.

const (
	numGroups = 4
	day       = 86400.0
	peakHour  = 14.0
)

var (
	groupOffset = [numGroups]float64{0, -5 * 3600, 1 * 3600, 8 * 3600}
	// weekdayFactor is Monday to Sunday.
	weekdayFactor = [7]float64{1.0, 1.02, 1.0, 0.98, 0.93, 0.62, 0.58}
	minWeekday    = 0.58
	// weekdayPrefix[d] is the sum of weekdayFactor before day d; weekdayPrefix[7] a week's sum.
	weekdayPrefix = func() (p [8]float64) {
		for d, f := range weekdayFactor {
			p[d+1] = p[d] + f
		}
		return p
	}()
	// refTime is the origin of counter integrals: a Monday at 00:00 UTC, early enough that
	// counters are positive at any time a test or a backfill will use.
	refTime = time.Date(2000, 1, 3, 0, 0, 0, 0, time.UTC).Unix()
)

// season is the part of a value shared by every series of a time-zone group at one sample time,
// computed once per request instead of once per sample.
type season struct {
	cos float64 // cos(ω(x-peak)): the daily shape, 1 at the peak
	wd  float64 // weekday factor
	// Integrals from refTime to x, in seconds, of: 1, cos(ω(x-peak)), the weekday factor, and
	// weekday factor × cos. A counter's value is a linear combination of them.
	t, sc, iw, iwc float64
}

const omega = 2 * math.Pi / day

// seasonAt computes the season of group g at Unix millisecond tms.
func seasonAt(g int, tms int64) season {
	x := float64(tms)/1000 - float64(refTime) + groupOffset[g] // local seconds since refTime
	days := math.Floor(x / day)
	tau := x - days*day
	dow := int(days) % 7
	if dow < 0 {
		dow += 7
	}
	weeks := math.Floor(days / 7)
	phase0 := math.Sin(-omega * peakHour * 3600)
	sinNow := math.Sin(omega * (tau - peakHour*3600))
	f := weekdayFactor[dow]
	return season{
		cos: math.Cos(omega * (tau - peakHour*3600)),
		wd:  f,
		t:   x,
		sc:  (sinNow - phase0) / omega,
		iw:  day*(weeks*weekdayPrefix[7]+weekdayPrefix[dow]) + f*tau,
		iwc: f * (sinNow - phase0) / omega,
	}
}

// mix64 is SplitMix64's finalizer: a cheap, well-mixed hash of a 64-bit key.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
