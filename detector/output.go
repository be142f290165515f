package detector

import (
	"math"
	"slices"
	"strings"
	"sync"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"

	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// Output receives what the store scores, as it scores it: the hook for sending the output series
// somewhere other than /scores (remote write). Set it with Store.SetOutput.
type Output interface {
	// WritePoints is called once per Append that scored something (or ended a scored series),
	// with the points in the order they were scored, after the store's locks are released and
	// from the goroutine that called Append, so possibly from many at once. ps is valid only
	// during the call: an implementation copies the points it keeps (a Point may be kept; it
	// references only immutable data).
	WritePoints(ps []Point)
}

// Point is one scored input sample, or the end of a scored series, seen by an Output: the values
// of the six output series at the input sample's timestamp.
type Point struct {
	// T is the timestamp of the input sample, in milliseconds since the epoch.
	T int64
	// Stale says that the input series ended at T (a stale marker): its output series end too,
	// and every Value is a stale marker.
	Stale bool

	odd      bool          // a label name needs sanitising, as on /scores
	labels   labels.Labels // the input series' labels, owned by the store and never changed
	hash     uint64
	observed float64
	res      model.Result
}

// Family is one output family.
type Family struct {
	Name, Help string
}

// Families are the output families, in the order of Point.Value's argument.
func Families() []Family {
	out := make([]Family, len(families))
	for i, f := range families {
		out[i] = Family{Name: f.name, Help: f.help}
	}
	return out
}

// NumFamilies is the number of output families: every Point is this many output samples.
const NumFamilies = 6

// Value is the value of output family i (see Families) at the point; a Prometheus stale marker
// for every family when the point is Stale.
func (p *Point) Value(i int) float64 {
	if p.Stale {
		return math.Float64frombits(value.StaleNaN)
	}
	return families[i].value(&p.res, p.observed)
}

// Hash is a hash of the input series' labels: the same for every point of a series in this
// process (not across restarts).
func (p *Point) Hash() uint64 { return p.hash }

// AppendLabels appends the labels of the point's output series, less __name__ (the family name),
// sorted by name, to dst: exactly the labels of the series on /scores. Names that need
// sanitising allocate; nothing else does.
func (p *Point) AppendLabels(dst []labels.Label) []labels.Label {
	start := len(dst)
	metric := rangeOutputLabels(p.labels, func(n, v string) {
		if p.odd && !legacyName(n) {
			n = string(appendSanitisedName(nil, n))
		}
		dst = append(dst, labels.Label{Name: n, Value: v})
	})
	dst = append(dst, labels.Label{Name: MetricLabel, Value: metric})
	slices.SortFunc(dst[start:], func(a, b labels.Label) int { return strings.Compare(a.Name, b.Name) })
	return dst
}

// InputLabels are the labels of the input series, including __name__.
func (p *Point) InputLabels() labels.Labels { return p.labels }

// outputRef boxes an Output for an atomic pointer.
type outputRef struct{ o Output }

// SetOutput installs o as the store's Output; nil removes it. Without one, Append collects
// nothing.
func (s *Store) SetOutput(o Output) {
	if o == nil {
		s.out.Store(nil)
		return
	}
	s.out.Store(&outputRef{o})
}

// maxPooledPoints bounds the point buffers kept for reuse.
const maxPooledPoints = 1 << 16

var pointPool = sync.Pool{New: func() any { return new([]Point) }}

// emit records a point for the Output; called under the shard lock.
func (st *appendStats) emit(e *entry, t int64, stale bool) {
	*st.points = append(*st.points, Point{
		T: t, Stale: stale, odd: e.flags&flagOddNames != 0,
		labels: e.labels, hash: e.check, observed: e.observed(), res: e.res,
	})
}

// flush hands the points of one Append to the Output and recycles the buffer.
func (st *appendStats) flush(o Output) {
	if ps := *st.points; len(ps) > 0 {
		o.WritePoints(ps)
		clear(ps) // drop the label references before pooling
	}
	if cap(*st.points) <= maxPooledPoints {
		*st.points = (*st.points)[:0]
		pointPool.Put(st.points)
	}
}

// rangeOutputLabels calls f with the name and value of every label of the output series of an
// input series with labels ls, in input order: the input labels less __name__, a name that
// collides with ours renamed with the exported_ prefix. It returns the metric name, which goes in
// MetricLabel. Names that need sanitising are passed as they are, for the caller to sanitise
// where it writes them. It is the one place of these rules, for /scores and for remote write.
func rangeOutputLabels(ls labels.Labels, f func(name, value string)) (metric string) {
	ls.Range(func(l labels.Label) {
		if l.Name == prommodel.MetricNameLabel {
			metric = l.Value
			return
		}
		n := l.Name
		if n == MetricLabel || hasPrefixExported(n) {
			n = exportedName(n)
		}
		f(n, l.Value)
	})
	return metric
}
