package remotewrite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
	"unsafe"

	prommodel "github.com/prometheus/common/model"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// This file decodes the two remote-write protobuf messages straight from the wire format into a
// pooled batch.Batch. The generated gogo types allocate a string per label and a slice per series;
// here every label string aliases the decoded request buffer (unsafe.String) and all labels and
// samples of a request live in two arenas that are reused from request to request, so a decode
// in steady state allocates nothing.
//
// Field numbers, from prompb/remote.proto, prompb/types.proto and
// prompb/io/prometheus/write/v2/types.proto:
//
//	prometheus.WriteRequest         timeseries=1 metadata=3
//	prometheus.TimeSeries           labels=1 samples=2 exemplars=3 histograms=4
//	prometheus.Label                name=1 value=2
//	prometheus.Sample               value=1 (double) timestamp=2 (int64)
//	prometheus.MetricMetadata       type=1 metric_family_name=2
//	io.prometheus.write.v2.Request  symbols=4 timeseries=5
//	...v2.TimeSeries                labels_refs=1 samples=2 histograms=3 exemplars=4 metadata=5
//	...v2.Sample                    value=1 timestamp=2
//	...v2.Metadata                  type=1 help_ref=3 unit_ref=4

// metricNameLabel is the label that carries the metric name.
// The reserved label names the decoder reads: the metric name, and the labels a Prometheus with
// --enable-feature=type-and-unit-labels adds to every series, carrying its metric metadata
// (Prometheus 3.15 sends types in no other way). Those two are metadata, not identity: the
// decoder takes the type from __type__ and drops both, so that a series keeps one identity
// whether its sender adds them or not, and the scores, which are gauges, do not carry a
// __type__ that says counter.
const (
	metricNameLabel = prommodel.MetricNameLabel
	typeLabel       = prommodel.MetricTypeLabel
	unitLabel       = prommodel.MetricUnitLabel
)

// typeNames are the values of __type__, as Prometheus writes them.
var typeNames = map[string]batch.MetricType{
	"counter": batch.Counter, "gauge": batch.Gauge, "histogram": batch.Histogram,
	"gaugehistogram": batch.GaugeHistogram, "summary": batch.Summary, "info": batch.Info,
	"stateset": batch.StateSet,
}

// reason says why the samples of a series were rejected; it is the reason label of
// samples_rejected_total.
type reason uint8

const (
	reasonMissingMetricName reason = iota
	reasonEmptyLabelName
	reasonDuplicateLabelName
	reasonInvalidUTF8
	reasonTooManyLabels
	reasonLabelNameTooLong
	reasonLabelValueTooLong
	reasonTooManySeries
	numReasons
)

var reasonNames = [numReasons]string{
	reasonMissingMetricName:  "missing_metric_name",
	reasonEmptyLabelName:     "empty_label_name",
	reasonDuplicateLabelName: "duplicate_label_name",
	reasonInvalidUTF8:        "invalid_utf8",
	reasonTooManyLabels:      "too_many_labels",
	reasonLabelNameTooLong:   "label_name_too_long",
	reasonLabelValueTooLong:  "label_value_too_long",
	reasonTooManySeries:      "too_many_series",
}

func (r reason) String() string { return reasonNames[r] }

// errMalformed marks a request that can never be decoded: bad protobuf, broken symbol table.
// Nothing of such a request is appended.
var errMalformed = errors.New("malformed request")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errMalformed}, args...)...)
}

func wireError(what string, n int) error {
	return malformed("%s: %v", what, protowire.ParseError(n))
}

func wireTypeError(what string, typ protowire.Type) error {
	return malformed("%s: unexpected wire type %d", what, typ)
}

// limits are the per-series and per-request limits of Options; 0 means unlimited.
type limits struct {
	maxLabels, maxNameLen, maxValueLen, maxSeries int
}

// bounded returns the limits with 0, no limit, as math.MaxInt: the decoder takes them so once per
// request, and every check compares without a case for "no limit".
func (l limits) bounded() limits {
	for _, v := range []*int{&l.maxLabels, &l.maxNameLen, &l.maxValueLen, &l.maxSeries} {
		if *v == 0 {
			*v = math.MaxInt
		}
	}
	return l
}

// metaEntry is one RW 1.0 metric family's type.
type metaEntry struct {
	name string
	typ  batch.MetricType
}

// rejection describes the first series rejected in a request, for the one-line response body.
type rejection struct {
	reason reason
	metric string // __name__ of the series if known; aliases the buffer
	label  string // offending label name if any; aliases the buffer
}

// decoder holds everything one request needs and is reused through a sync.Pool. The label strings
// of b alias buf, so b is valid until the decoder is reused.
type decoder struct {
	lim limits
	max limits // lim.bounded(), for the request being decoded

	body []byte // the request body as read (compressed)
	buf  []byte // the decoded protobuf message

	// b's series slice their labels and samples out of two arenas. When an arena grows, the
	// series cut before stay valid in the old array, which nothing writes to any more; moved
	// records that, so that reset drops those references rather than keeping the old arrays
	// alive in the pool.
	b       batch.Batch
	labels  []batch.Label
	samples []batch.Sample
	// enc is the arena of the series' LabelsData, written by the fast paths.
	enc     []byte
	moved   bool
	symbols []string
	meta    []metaEntry

	// symbolsValid is set when every RW 2.0 symbol is valid UTF-8, checked once per request
	// rather than once per reference.
	symbolsValid bool
	// runV1 and runV2 are the states labelRunV1 and labelRunV2 start each series with, made
	// once per request by parseV1 and parseV2.
	runV1 labelRunV1
	runV2 labelRunV2
	// copyable is how many of the symbols, from the first, have wordSlack-1 bytes after them in
	// the request's array, which copyWords may read (see parseV2).
	copyable int
	// general sends every series through checkLabels, as if no label were in the common
	// encoding: tests compare the two paths with it.
	general bool

	// Per request: how many series the request had, and what was rejected per reason.
	seriesTotal     int
	rejectedSeries  int
	rejectedSamples [numReasons]int // float and histogram samples
	first           rejection
}

// reset prepares the decoder for a new request, keeping every buffer's capacity.
func (d *decoder) reset() {
	if d.moved {
		clear(d.b.Series[:cap(d.b.Series)])
		d.moved = false
	}
	d.b.Series = d.b.Series[:0]
	d.labels = d.labels[:0]
	d.samples = d.samples[:0]
	d.enc = d.enc[:0]
	d.symbols = d.symbols[:0]
	d.meta = d.meta[:0]
	d.b.Metadata = d.b.Metadata[:0]
	d.seriesTotal = 0
	d.rejectedSeries = 0
	d.rejectedSamples = [numReasons]int{}
	d.first = rejection{}
}

// rejectedTotal returns the number of samples rejected by the last decode, over all reasons.
func (d *decoder) rejectedTotal() int {
	n := 0
	for _, c := range d.rejectedSamples {
		n += c
	}
	return n
}

// alias returns b as a string without copying. The string is valid as long as the decode buffer is.
func alias(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(unsafe.SliceData(b), len(b))
}

// consumeTag is protowire.ConsumeTag with a fast path for one-byte tags (field numbers below 16),
// which are all the tags of the remote-write messages.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	if len(b) > 0 && b[0] < 0x80 && b[0] >= 8 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// consumeVarint is protowire.ConsumeVarint with a fast path for one-byte values.
func consumeVarint(b []byte) (uint64, int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return protowire.ConsumeVarint(b)
}

// consumeBytes is protowire.ConsumeBytes with a fast path for lengths below 128.
func consumeBytes(b []byte) ([]byte, int) {
	if len(b) > 0 && b[0] < 0x80 {
		if l := int(b[0]) + 1; l <= len(b) {
			return b[1:l], l
		}
	}
	return protowire.ConsumeBytes(b)
}

// shortField returns the value of the bytes field at the start of b when its tag is the one-byte
// tag and its length is below 16384 (one or two varint bytes: a TimeSeries, a Sample), and the
// field's length; n is 0 when b does not start with such a field. It is the fast path of
// consumeTag and consumeBytes for the fields that every request repeats.
func shortField(b []byte, tag byte) (v []byte, n int) {
	if len(b) >= 3 && b[0] == tag {
		l, n := int(b[1]), 2
		if l >= 0x80 {
			if b[2] >= 0x80 {
				return nil, 0
			}
			l, n = l&0x7f|int(b[2])<<7, 3
		}
		if l <= len(b)-n {
			return b[n : n+l], n + l
		}
	}
	return nil, 0
}

// skipField skips the value of a field this decoder does not read.
func skipField(what string, num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, wireError(what, n)
	}
	return n, nil
}

// decodeV1 decodes a prometheus.WriteRequest into d.b. It returns an error wrapping errMalformed
// when the message cannot be decoded, and errTooManySeries when the request is over the series
// limit; d.b is empty then. Series with invalid labels are dropped and recorded in d's rejection
// counters.
func (d *decoder) decodeV1(data []byte) error { return d.decode(data, (*decoder).parseV1) }

// decodeV2 decodes an io.prometheus.write.v2.Request into d.b, with the contract of decodeV1.
func (d *decoder) decodeV2(data []byte) error { return d.decode(data, (*decoder).parseV2) }

func (d *decoder) decode(data []byte, parse func(*decoder, []byte) error) error {
	d.reset()
	d.max = d.lim.bounded()
	labelsCap, samplesCap, encCap := cap(d.labels), cap(d.samples), cap(d.enc)
	err := parse(d, data)
	d.moved = d.moved || cap(d.labels) != labelsCap || cap(d.samples) != samplesCap || cap(d.enc) != encCap
	if err == nil {
		err = d.finish()
	}
	if err != nil {
		d.b.Series = d.b.Series[:0]
		d.b.Metadata = d.b.Metadata[:0]
	}
	return err
}

// parseV1 decodes the fields of a prometheus.WriteRequest.
func (d *decoder) parseV1(data []byte) error {
	d.runV1 = labelRunV1{prev: &noLabel[0], left: d.max.maxLabels, maxName: uint(d.max.maxNameLen), maxValue: uint(d.max.maxValueLen)}
	for len(data) > 0 {
		if m, n := shortField(data, 1<<3|byte(protowire.BytesType)); n > 0 {
			data = data[n:]
			if d.seriesV1Common(m) {
				continue
			}
			if err := d.seriesV1(m); err != nil {
				return err
			}
			continue
		}
		num, typ, n := consumeTag(data)
		if n < 0 {
			return wireError("WriteRequest", n)
		}
		data = data[n:]
		switch num {
		case 1, 3:
			if typ != protowire.BytesType {
				return wireTypeError("WriteRequest", typ)
			}
			m, n := consumeBytes(data)
			if n < 0 {
				return wireError("WriteRequest", n)
			}
			data = data[n:]
			var err error
			if num == 1 {
				err = d.seriesV1(m)
			} else {
				err = d.metadataV1(m)
			}
			if err != nil {
				return err
			}
		default:
			n, err := skipField("WriteRequest", num, typ, data)
			if err != nil {
				return err
			}
			data = data[n:]
		}
	}
	if len(d.meta) > 0 {
		d.applyMetadataV1()
	}
	return nil
}

// seriesV1Common decodes a prometheus.TimeSeries in the shape that nearly every sender writes,
// and that seriesV1 would keep with labelRunV1 alone: every label in the common encoding and
// valid there (see labelRunV1.read), the metric name among them, all in ASCII, then samples in
// the common encoding, nothing else. It reports false, having kept nothing of the series, for
// any other series, which seriesV1 then decodes from its start. It is seriesV1 with none of
// the state of the other shapes, which costs most of seriesV1's instructions for a series
// of this shape: spills and reloads of the outer loop's dozen values.
func (d *decoder) seriesV1Common(m []byte) bool {
	if d.general {
		return false
	}
	lo, slo := len(d.labels), len(d.samples)
	enc := slices.Grow(d.enc, len(m)+wordSlack)
	elo := len(enc)
	d.enc = enc // the room made is kept whatever the outcome: seriesV1 needs the same
	run := d.runV1
	i, enc := run.read(m, enc)
	if !run.name || !isASCII(m[:i]) {
		return false
	}
	for rest := m[i:]; len(rest) > 0; {
		b, n := shortField(rest, 2<<3|byte(protowire.BytesType))
		if n == 0 {
			d.samples = d.samples[:slo]
			return false
		}
		s, err := sample(b)
		if err != nil {
			d.samples = d.samples[:slo]
			return false // seriesV1 returns the error
		}
		d.samples = append(d.samples, s)
		rest = rest[n:]
	}
	d.enc = enc
	d.appendChecked(lo, slo, elo, 0, 0, batch.Unknown)
	return true
}

// seriesV1 decodes one prometheus.TimeSeries. Labels take the most time, so the common encoding
// of one (a label message shorter than 128 bytes holding a name and a value shorter than 128
// bytes each, in field order) is read by labelRunV1.read, and checked as it is read while the
// labels keep to what checkLabels would accept as they are (sorted, within the limits, with
// values, without __type__ or __unit__): then the series needs no second pass over its labels.
// Anything else takes the general path and checkLabels. A series that seriesV1Common takes
// whole never gets here.
func (d *decoder) seriesV1(m []byte) error {
	lo, slo := len(d.labels), len(d.samples)
	labels := d.labels // written back at the end: the loop appends to a local
	// The checked labels' LabelsData: a label in the common encoding is its name and value
	// each with its one-byte length before it, which is the label message without its three
	// tag and length bytes and the value's tag, so it is two copies. The encoding is shorter
	// than the message, so room for all of it is made once.
	enc := slices.Grow(d.enc, len(m)+wordSlack)
	elo := len(enc)
	kept := elo // enc[:kept] is kept: more when labels alias it (unlazy)
	var hist, ex, nlabels int
	// Label fields are checked for ASCII, hence valid UTF-8, in one run over the leading label
	// fields (senders write the labels first), and a label field after another field on its own;
	// only a series with a non-ASCII byte there gets per-string checks.
	ascii := true
	whole := m
	leading := true // no other field seen yet: the label fields so far are whole[:len(whole)-len(m)]
	labelsEnd := len(whole)
	// checked says the labels so far are valid and need nothing of checkLabels; run reads them
	// and keeps the last label's name and the metric name.
	checked := !d.general
	maxLabels := d.max.maxLabels
	run := d.runV1
	for len(m) > 0 {
		// The run of label fields in the common encoding: most of what a request costs to decode.
		if checked {
			left := run.left
			var i int
			i, enc = run.read(m, enc)
			nlabels += left - run.left
			if !leading && i > 0 {
				ascii = ascii && isASCII(m[:i])
			}
			m = m[i:]
		}
		if len(m) == 0 {
			break
		}
		var v []byte
		if b, n := shortField(m, 2<<3|byte(protowire.BytesType)); n > 0 {
			// A sample, as every series has after its labels.
			if leading {
				leading, labelsEnd = false, len(whole)-len(m)
			}
			m = m[n:]
			s, err := sample(b)
			if err != nil {
				return err
			}
			d.samples = append(d.samples, s)
			continue
		}
		if len(m) >= 2 && m[0] == 1<<3|byte(protowire.BytesType) && m[1] < 0x80 && 2+int(m[1]) <= len(m) {
			v = m[2 : 2+int(m[1])]
			m = m[2+int(m[1]):]
			if !leading {
				ascii = ascii && isASCII(v)
			}
		} else {
			start := len(whole) - len(m)
			num, typ, n := consumeTag(m)
			if n < 0 {
				return wireError("TimeSeries", n)
			}
			m = m[n:]
			if num < 1 || num > 4 {
				n, err := skipField("TimeSeries", num, typ, m)
				if err != nil {
					return err
				}
				m = m[n:]
				if leading {
					leading, labelsEnd = false, start
				}
				continue
			}
			if typ != protowire.BytesType {
				return wireTypeError("TimeSeries", typ)
			}
			b, n := consumeBytes(m)
			if n < 0 {
				return wireError("TimeSeries", n)
			}
			m = m[n:]
			if num != 1 {
				if leading {
					leading, labelsEnd = false, start
				}
				switch num {
				case 2:
					s, err := sample(b)
					if err != nil {
						return err
					}
					d.samples = append(d.samples, s)
				case 3:
					ex++
				case 4:
					hist++
				}
				continue
			}
			v = b
			if !leading {
				ascii = ascii && isASCII(whole[start:len(whole)-len(m)])
			}
		}

		nlabels++
		if len(v) >= 4 && v[0] == 1<<3|byte(protowire.BytesType) && v[1] < 0x80 {
			n1 := int(v[1])
			if 4+n1 <= len(v) && v[2+n1] == 2<<3|byte(protowire.BytesType) && v[3+n1] < 0x80 && 4+n1+int(v[3+n1]) == len(v) {
				if nlabels > maxLabels {
					continue // the series is rejected whole; its labels are not kept
				}
				// Both strings alias the request (an empty one is "" whatever its pointer). The
				// loop above took every label it could check; this one is not checked.
				nb, vb := v[2:2+n1], v[4+n1:]
				if checked {
					labels, kept, checked = unlazy(labels, enc, elo), len(enc), false
				}
				labels = append(labels, batch.Label{
					Name:  unsafe.String(unsafe.SliceData(nb), len(nb)),
					Value: unsafe.String(unsafe.SliceData(vb), len(vb)),
				})
				continue
			}
		}
		l, err := labelV1(v)
		if err != nil {
			d.labels = labels
			return err
		}
		if checked {
			labels, kept, checked = unlazy(labels, enc, elo), len(enc), false
		}
		if nlabels <= maxLabels {
			labels = append(labels, l)
		}
	}
	d.labels = labels
	if leading {
		labelsEnd = len(whole)
	}
	ascii = ascii && isASCII(whole[:labelsEnd])
	if checked && ascii && run.name && nlabels <= maxLabels {
		d.enc = enc
		d.appendChecked(lo, slo, elo, hist, ex, batch.Unknown)
		return nil
	}
	if checked {
		d.labels, kept = unlazy(d.labels, enc, elo), len(enc)
	}
	d.enc = enc[:kept]
	d.endSeries(lo, slo, nlabels, hist, ex, batch.Unknown, !ascii)
	return nil
}

// noLabel stands for the label before a series' first: its name is empty (length 0), so
// every name sorts after it.
var noLabel [2]byte

// Label names of eight bytes, as little-endian words: the reserved names that the fast paths
// compare a name of eight bytes starting with '_' against, in one comparison each.
var (
	metricNameWord = binary.LittleEndian.Uint64([]byte(metricNameLabel))
	typeLabelWord  = binary.LittleEndian.Uint64([]byte(typeLabel))
	unitLabelWord  = binary.LittleEndian.Uint64([]byte(unitLabel))
)

// labelRunV1 is the fast path of seriesV1 over a series' labels in the common encoding, kept
// across the runs of label fields of one series. read is a function of its own so that its
// loop has its few values in registers: inlined in seriesV1, it shared them with a dozen
// values of the outer loop and spilled and reloaded on every label.
type labelRunV1 struct {
	// prev points at the length byte before the name of the last label read (in the request),
	// or at noLabel before the first one: its name, for the sortedness check, is the length
	// byte's count of bytes after it, and its first byte the byte after it.
	prev *byte
	// name is set when the metric name was read (its value is never empty here).
	name bool
	// left is how many more labels the series may have: maxLabels less those read.
	left int
	// The bounded limits, unsigned: a name of n bytes is within them when uint(n-1) <
	// maxName, which also rejects the empty name (n-1 wraps around), in one comparison.
	maxName, maxValue uint
}

// read reads the label fields in the common encoding at the start of m (a label message
// shorter than 128 bytes holding a name and a value, in field order), checking each as
// checkLabels would: a name and a value not empty and within the limits, names sorted, no
// more labels than the limit, not __type__ or __unit__. It stops at the first field that is
// not such a label, or fails a check: the caller takes that one on the general path. Each
// label's LabelsData (its name and value each with its one-byte length before it) is
// appended to enc, which must have room for len(m)+wordSlack more bytes. It returns how many
// bytes of m it read.
//
// The labels are copied with copyWords, which reads up to wordSlack-1 bytes past a label: read
// takes only labels that end that far before the end of m's array. A request from the handler
// has that room after it, so there every label of m can be read here; elsewhere (tests) the
// last labels of a request take the general path.
//
// m and enc are walked with pointers, without bounds checks: every byte read or written is
// within the lengths checked before it, and both pointers stay inside their arrays (p ends at
// most at the limit, wordSlack-1 bytes before the end of m's array; w has wordSlack bytes of
// room after it). The loop calls nothing: a call in it would make the compiler spill its values
// on every label (see sortsAfter).
func (r *labelRunV1) read(m, enc []byte) (int, []byte) {
	limit := min(len(m), cap(m)-(wordSlack-1))
	if limit < 6 {
		return 0, enc
	}
	base := unsafe.Pointer(unsafe.SliceData(m))
	p := base
	dst := unsafe.Pointer(unsafe.SliceData(enc[:cap(enc)]))
	w := unsafe.Add(dst, len(enc))
	prev, left := r.prev, r.left
	for avail := limit; avail >= 6; { // avail: the bytes from p to the limit
		// The label's tag, its length, the name's tag and length in one word: the two tags
		// and the length's continuation bit are tested with one mask. The name's length needs
		// no such test: it is checked against the label's below, which is under 128.
		h := binary.LittleEndian.Uint32((*[4]byte)(p)[:])
		ll, n1 := int(*(*byte)(unsafe.Add(p, 1))), int(*(*byte)(unsafe.Add(p, 3))) // loads, not shifts of h
		if h&0x00ff80ff != uint32(1<<3|protowire.BytesType)|uint32(1<<3|protowire.BytesType)<<16 ||
			ll > avail-2 || n1+4 > ll {
			break
		}
		q := unsafe.Add(p, 4+n1) // the value's tag
		n2 := int(*(*byte)(unsafe.Add(q, 1)))
		// n1+n2+4 == ll < 128 makes both lengths one-byte varints.
		if *(*byte)(q) != 2<<3|byte(protowire.BytesType) || n1+n2+4 != ll ||
			uint(n1-1) >= r.maxName || uint(n2-1) >= r.maxValue || left == 0 {
			break
		}
		name := unsafe.Add(p, 4)
		// Sorted: decided by the first bytes unless they are equal (or this is the first label,
		// whose first byte may be 0 like noLabel's).
		if c := *(*byte)(name); c <= *(*byte)(unsafe.Add(unsafe.Pointer(prev), 1)) && *prev != 0 &&
			!sortsAfter(unsafe.Slice((*byte)(name), n1), unsafe.Slice((*byte)(unsafe.Add(unsafe.Pointer(prev), 1)), int(*prev))) {
			break
		}
		if n1 == len(metricNameLabel) && *(*byte)(name) == '_' {
			word := binary.LittleEndian.Uint64((*[8]byte)(name)[:])
			if word == typeLabelWord || word == unitLabelWord {
				break // metadata: checkLabels takes it out
			}
			if word == metricNameWord {
				r.name = true
			}
		}
		prev = (*byte)(unsafe.Add(p, 3))
		left--
		copyWords(w, unsafe.Add(p, 3), 1+n1)
		copyWords(unsafe.Add(w, 1+n1), unsafe.Add(q, 1), 1+n2)
		w = unsafe.Add(w, ll-2)
		p = unsafe.Add(p, 2+ll)
		avail -= 2 + ll
	}
	r.prev, r.left = prev, left
	return int(uintptr(p) - uintptr(base)), enc[:int(uintptr(w)-uintptr(dst))]
}

// sortsAfter reports whether a sorts after b, as a > b would for their strings. It is a loop
// rather than a comparison of strings so that labelRunV1.read calls nothing: a call in its loop
// makes the compiler spill its values on every label.
func sortsAfter(a, b []byte) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] > b[i]
		}
	}
	return len(a) > len(b)
}

// unlazy appends to labels the labels of a series that the fast path of seriesV1 kept only in
// enc[elo:], when the series leaves that path. Their strings alias enc, whose bytes up to its
// length must then be kept.
func unlazy(labels []batch.Label, enc []byte, elo int) []batch.Label {
	return batch.AppendDecoded(labels, enc[elo:])
}

// wordSlack is the room copyWords needs after what it copies, in both buffers.
const wordSlack = 16

// copyWords copies n bytes from src to dst sixteen at a time: label strings are short, and a
// call of memmove for each costs more than the copy. It writes and reads up to wordSlack-1
// bytes past the n, which must be there. The chunks are moved as byte arrays, which the
// compiler turns into one 16-byte load and store (SSE on amd64), with no inlined calls.
func copyWords(dst, src unsafe.Pointer, n int) {
	// One chunk whatever n: most names and values are shorter, and then there is no loop.
	*(*[16]byte)(dst) = *(*[16]byte)(src)
	if n > 16 {
		for o := 16; o < n; o += 16 {
			*(*[16]byte)(unsafe.Add(dst, o)) = *(*[16]byte)(unsafe.Add(src, o))
		}
	}
}

// isASCII reports whether b has no byte with the high bit set, eight bytes at a time. Label
// strings are nearly always ASCII, and ASCII is valid UTF-8, so this spares most utf8 checks.
func isASCII(b []byte) bool {
	var acc uint64
	n := len(b)
	if n < 8 {
		for _, c := range b {
			acc |= uint64(c)
		}
		return acc&0x80 == 0
	}
	le := binary.LittleEndian
	// Four words per round: independent loads and ORs, a quarter of the loop overhead.
	i := 0
	for ; i <= n-32; i += 32 {
		w := b[i : i+32 : i+32]
		acc |= le.Uint64(w) | le.Uint64(w[8:]) | le.Uint64(w[16:]) | le.Uint64(w[24:])
	}
	for ; i < n-8; i += 8 {
		acc |= le.Uint64(b[i : i+8 : i+8])
	}
	// The last eight bytes as one word, overlapping what the loops read: no loop over bytes.
	acc |= le.Uint64(b[n-8:])
	return acc&0x8080808080808080 == 0
}

// labelV1 decodes one prometheus.Label.
func labelV1(b []byte) (batch.Label, error) {
	var l batch.Label
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return l, wireError("Label", n)
		}
		b = b[n:]
		if num != 1 && num != 2 {
			n, err := skipField("Label", num, typ, b)
			if err != nil {
				return l, err
			}
			b = b[n:]
			continue
		}
		if typ != protowire.BytesType {
			return l, wireTypeError("Label", typ)
		}
		v, n := consumeBytes(b)
		if n < 0 {
			return l, wireError("Label", n)
		}
		b = b[n:]
		if num == 1 {
			l.Name = alias(v)
		} else {
			l.Value = alias(v)
		}
	}
	return l, nil
}

// sample decodes a prometheus.Sample or an io.prometheus.write.v2.Sample, which agree on the
// fields read here. The value's bits are kept exactly, so stale markers pass unchanged.
func sample(b []byte) (batch.Sample, error) {
	// The encoding every sender writes: the value (tag 0x09 and 8 bytes), then the timestamp
	// (tag 0x10 and a varint), nothing else. The varint is read here up to 8 bytes (a positive
	// timestamp takes 6); anything else takes the general path.
	if len(b) >= 11 && len(b) <= 18 && b[0] == 1<<3|byte(protowire.Fixed64Type) && b[9] == 2<<3|byte(protowire.VarintType) {
		// The varint is b[10:], k bytes (1 to 8, up to 2^56: a timestamp in ms takes 6), read
		// as one word, without a loop: the top k bytes of b's last eight.
		k := len(b) - 10
		x := binary.LittleEndian.Uint64(b[len(b)-8:]) >> (8 * (8 - k))
		// Every byte but the last has the continuation bit, the last has not: the varint ends
		// where b does. (Shifting by 64 for k = 1 gives 0.)
		if x&0x8080808080808080 == 0x8080808080808080>>(8*(9-k)) {
			// The 7-bit groups packed together: pairs of bytes into 14 bits, pairs of those
			// into 28, then the two halves into 56.
			t := x & 0x7f7f7f7f7f7f7f7f
			t = t&0x007f007f007f007f | t&0x7f007f007f007f00>>1
			t = t&0x00003fff00003fff | t&0x3fff00003fff0000>>2
			t = t&0x000000000fffffff | t&0x0fffffff00000000>>4
			return batch.Sample{T: int64(t), V: math.Float64frombits(binary.LittleEndian.Uint64(b[1:9]))}, nil
		}
	}
	return sampleGeneral(b)
}

// sampleGeneral is sample for any valid encoding: fields in any order, repeated, unknown.
func sampleGeneral(b []byte) (batch.Sample, error) {
	var s batch.Sample
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return s, wireError("Sample", n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			v, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return s, wireError("Sample", n)
			}
			s.V = math.Float64frombits(v)
			b = b[n:]
		case num == 2 && typ == protowire.VarintType:
			v, n := consumeVarint(b)
			if n < 0 {
				return s, wireError("Sample", n)
			}
			s.T = int64(v)
			b = b[n:]
		case num == 1 || num == 2:
			return s, wireTypeError("Sample", typ)
		default:
			n, err := skipField("Sample", num, typ, b)
			if err != nil {
				return s, err
			}
			b = b[n:]
		}
	}
	return s, nil
}

// metadataV1 decodes one prometheus.MetricMetadata and remembers its family's type.
func (d *decoder) metadataV1(b []byte) error {
	var e metaEntry
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return wireError("MetricMetadata", n)
		}
		b = b[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, n := consumeVarint(b)
			if n < 0 {
				return wireError("MetricMetadata", n)
			}
			e.typ = metricType(v)
			b = b[n:]
		case num == 2 && typ == protowire.BytesType:
			v, n := consumeBytes(b)
			if n < 0 {
				return wireError("MetricMetadata", n)
			}
			e.name = alias(v)
			b = b[n:]
		case num == 1 || num == 2:
			return wireTypeError("MetricMetadata", typ)
		default:
			n, err := skipField("MetricMetadata", num, typ, b)
			if err != nil {
				return err
			}
			b = b[n:]
		}
	}
	if e.name != "" && e.typ != batch.Unknown {
		d.meta = append(d.meta, e)
	}
	return nil
}

// metricType maps the metadata enum, which RW 1.0 and 2.0 and batch number alike, to a
// batch.MetricType; values from a newer sender that this build does not know become Unknown.
// Enums are int32 on the wire, so the varint is truncated to 32 bits as protobuf does.
func metricType(v uint64) batch.MetricType {
	if t := uint32(v); t <= uint32(batch.StateSet) {
		return batch.MetricType(t)
	}
	return batch.Unknown
}

// applyMetadataV1 sets the type of every kept series whose family the request's metadata names
// (see batch.TypeByFamily), and hands the metadata on for the consumer to remember.
func (d *decoder) applyMetadataV1() {
	slices.SortFunc(d.meta, func(a, b metaEntry) int { return strings.Compare(a.name, b.name) })
	find := func(name string) (batch.MetricType, bool) {
		i, ok := slices.BinarySearchFunc(d.meta, name, func(e metaEntry, n string) int { return strings.Compare(e.name, n) })
		if !ok {
			return batch.Unknown, false
		}
		return d.meta[i].typ, true
	}
	for i := range d.b.Series {
		if t, ok := batch.TypeByFamily(d.b.Series[i].MetricName(), find); ok {
			d.b.Series[i].Type = t
		}
	}
	for _, e := range d.meta {
		d.b.Metadata = append(d.b.Metadata, batch.Metadata{Family: e.name, Type: e.typ})
	}
}

// parseV2 decodes the fields of an io.prometheus.write.v2.Request. The symbols are collected in a
// first pass because protobuf allows them to follow the series that reference them.
func (d *decoder) parseV2(data []byte) error {
	d.symbolsValid = true
	// The symbols are checked for valid UTF-8 a run of consecutive symbol fields at a time
	// (see checkSymbols): run is where the run being read starts in data, -1 outside one, and
	// runSym its first symbol.
	run, runSym := -1, 0
	series := len(data) // where the first series field starts: the second pass starts there
	rest := data
	for len(rest) > 0 {
		// Symbols and series in one step each (see shortField); the other fields, and these
		// when longer, below.
		if v, n := shortField(rest, 4<<3|byte(protowire.BytesType)); n > 0 {
			if run < 0 {
				run, runSym = len(data)-len(rest), len(d.symbols)
			}
			rest = rest[n:]
			d.symbols = append(d.symbols, alias(v))
			continue
		}
		if run >= 0 {
			d.checkSymbols(data[run:len(data)-len(rest)], runSym)
			run = -1
		}
		if _, n := shortField(rest, 5<<3|byte(protowire.BytesType)); n > 0 {
			series = min(series, len(data)-len(rest))
			rest = rest[n:]
			continue
		}
		start := len(data) - len(rest)
		num, typ, n := consumeTag(rest)
		if n < 0 {
			return wireError("Request", n)
		}
		rest = rest[n:]
		if num == 5 {
			series = min(series, start)
		}
		if num == 4 || num == 5 {
			if typ != protowire.BytesType {
				return wireTypeError("Request", typ)
			}
			v, n := consumeBytes(rest)
			if n < 0 {
				return wireError("Request", n)
			}
			rest = rest[n:]
			if num == 4 {
				d.symbols = append(d.symbols, alias(v))
				if d.symbolsValid && !isASCII(v) && !utf8.Valid(v) {
					d.symbolsValid = false
				}
			}
			continue
		}
		n, err := skipField("Request", num, typ, rest)
		if err != nil {
			return err
		}
		rest = rest[n:]
	}
	if run >= 0 {
		d.checkSymbols(data[run:], runSym)
	}
	if len(d.symbols) > 0 && d.symbols[0] != "" {
		return malformed("symbols[0] must be the empty string, got %q", clip(d.symbols[0]))
	}
	// The symbols lie in the request in their order: those without the room for copyWords
	// after them, if any, are the last ones, and only when the request has no room after it
	// (the handler makes it) and ends with symbols. labelRunV2.read takes the others only.
	d.runV2 = labelRunV2{prev: "\x00", left: d.max.maxLabels, maxName: uint(min(d.max.maxNameLen, 254)), maxValue: uint(min(d.max.maxValueLen, 254))}
	d.copyable = len(d.symbols)
	end := uintptr(unsafe.Pointer(unsafe.SliceData(data))) + uintptr(cap(data))
	for ; d.copyable > 0; d.copyable-- {
		s := d.symbols[d.copyable-1]
		if len(s) > 0 && uintptr(unsafe.Pointer(unsafe.StringData(s)))+uintptr(len(s))+wordSlack-1 <= end {
			break
		}
	}
	// The first pass checked the framing of every top-level field, so the second one only has
	// to find the series, from the first on: senders write the symbols before them.
	data = data[series:]
	for len(data) > 0 {
		if v, n := shortField(data, 5<<3|byte(protowire.BytesType)); n > 0 {
			data = data[n:]
			if d.seriesV2Common(v) {
				continue
			}
			if err := d.seriesV2(v); err != nil {
				return err
			}
			continue
		}
		if _, n := shortField(data, 4<<3|byte(protowire.BytesType)); n > 0 {
			data = data[n:] // a symbol, read in the first pass
			continue
		}
		num, typ, n := consumeTag(data)
		data = data[n:]
		if num != 5 {
			data = data[protowire.ConsumeFieldValue(num, typ, data):]
			continue
		}
		v, n := consumeBytes(data)
		data = data[n:]
		if err := d.seriesV2(v); err != nil {
			return err
		}
	}
	return nil
}

// checkSymbols clears symbolsValid unless the symbols d.symbols[from:] are valid UTF-8. b is
// the run of their fields in the request: their tags and one-byte lengths, which are ASCII,
// and the symbols, so that one isASCII over the run decides for all of them (a call per
// symbol cost more than the check); when it does not, each symbol is checked.
func (d *decoder) checkSymbols(b []byte, from int) {
	if !d.symbolsValid || isASCII(b) {
		return
	}
	for _, s := range d.symbols[from:] {
		if !utf8.ValidString(s) {
			d.symbolsValid = false
			return
		}
	}
}

// shortVarint decodes a varint of one or two bytes at the start of p: a symbol reference below
// 16384. n is 0 when p does not start with one.
func shortVarint(p []byte) (v uint32, n int) {
	switch {
	case len(p) >= 1 && p[0] < 0x80:
		return uint32(p[0]), 1
	case len(p) >= 2 && p[1] < 0x80:
		return uint32(p[0]&0x7f) | uint32(p[1])<<7, 2
	}
	return 0, 0
}

// symbol resolves a symbol reference, truncated to 32 bits as a uint32 field is.
func (d *decoder) symbol(ref uint64) (string, error) {
	r := uint32(ref)
	if int(r) >= len(d.symbols) {
		return "", malformed("symbol reference %d out of range (%d symbols)", r, len(d.symbols))
	}
	return d.symbols[r], nil
}

// seriesV2Common decodes an io.prometheus.write.v2.TimeSeries in the shape that senders write,
// as seriesV1Common does for RW 1.0: one packed labels_refs field whose every pair
// labelRunV2.read takes, the metric name among them, valid symbols, then samples in the common
// encoding and metadata, nothing else. It reports false, having kept nothing of the series,
// for any other series, which seriesV2 then decodes from its start.
func (d *decoder) seriesV2Common(m []byte) bool {
	if d.general || !d.symbolsValid {
		return false
	}
	p, n := shortField(m, 1<<3|byte(protowire.BytesType))
	if n == 0 {
		return false
	}
	lo, slo, elo := len(d.labels), len(d.samples), len(d.enc)
	run := d.runV2
	enc := d.enc
	for i := 0; ; {
		k, need := 0, 0
		k, enc, need = run.read(p[i:], d.symbols[:d.copyable], enc)
		i += k
		if need == 0 {
			if i != len(p) || !run.name {
				d.enc = enc[:elo] // the room made is kept: seriesV2 needs the same
				return false
			}
			break
		}
		enc = slices.Grow(enc, need)
	}
	typ := batch.Unknown
	for rest := m[n:]; len(rest) > 0; {
		// Any other field, or an error (which seriesV2 returns), leaves this path.
		if b, k := shortField(rest, 2<<3|byte(protowire.BytesType)); k > 0 {
			if s, err := sample(b); err == nil {
				d.samples = append(d.samples, s)
				rest = rest[k:]
				continue
			}
		} else if b, k := shortField(rest, 5<<3|byte(protowire.BytesType)); k > 0 {
			if t, err := d.metadataV2(b); err == nil {
				if t >= 0 {
					typ = batch.MetricType(t)
				}
				rest = rest[k:]
				continue
			}
		}
		d.samples, d.enc = d.samples[:slo], enc[:elo]
		return false
	}
	d.enc = enc
	d.appendChecked(lo, slo, elo, 0, 0, typ)
	return true
}

// seriesV2 decodes one io.prometheus.write.v2.TimeSeries.
func (d *decoder) seriesV2(m []byte) error {
	lo, slo := len(d.labels), len(d.samples)
	var (
		hist, ex, nlabels int
		typ               = batch.Unknown
		lname             string // the name of the pair being read
		haveName          bool
	)
	// checked says the labels so far are valid and need nothing of checkLabels, as in
	// seriesV1; run reads them.
	checked := !d.general
	maxLabels := d.max.maxLabels
	run := d.runV2
	enc, elo := d.enc, len(d.enc) // the checked labels' LabelsData
	// The symbols alias the request, which has wordSlack bytes after it when it comes from the
	// handler: copyWords may read that far past a symbol (see parseV2).
	kept := elo                              // as in seriesV1
	var unpacked [binary.MaxVarintLen64]byte // one unpacked reference, re-encoded for the loop below
	for len(m) > 0 {
		num, wt, n := consumeTag(m)
		if n < 0 {
			return wireError("TimeSeries", n)
		}
		m = m[n:]
		switch {
		case num == 1 && (wt == protowire.BytesType || wt == protowire.VarintType):
			// labels_refs, packed (as senders write them) or one by one: the references pair
			// up, the first of a pair a name, the second its value.
			var p []byte
			if wt == protowire.BytesType {
				var n int
				if p, n = consumeBytes(m); n < 0 {
					return wireError("TimeSeries", n)
				}
				m = m[n:]
			} else {
				ref, n := consumeVarint(m)
				if n < 0 {
					return wireError("TimeSeries.labels_refs", n)
				}
				m = m[n:]
				p = binary.AppendUvarint(unpacked[:0], ref)
				if checked {
					d.labels, kept, checked = unlazy(d.labels, enc, elo), len(enc), false
				}
			}
			labels, symbols := d.labels, d.symbols
			// Whole pairs of references below 16384 (one or two bytes each), checked as they are
			// read: nearly every label of every series. What is left takes the loop after.
			for checked && !haveName && len(p) >= 2 {
				i, need, left := 0, 0, run.left
				i, enc, need = run.read(p, symbols[:d.copyable], enc)
				nlabels += left - run.left
				p = p[i:]
				if need == 0 {
					break
				}
				enc = slices.Grow(enc, need)
			}
			if len(p) > 0 && checked {
				labels, kept, checked = unlazy(labels, enc, elo), len(enc), false
			}
			for len(p) > 0 {
				// References below 16384 (one or two bytes) are decoded inline.
				var ref uint64
				switch {
				case p[0] < 0x80:
					ref, p = uint64(p[0]), p[1:]
				case len(p) >= 2 && p[1] < 0x80:
					ref, p = uint64(p[0]&0x7f)|uint64(p[1])<<7, p[2:]
				default:
					var n int
					if ref, n = protowire.ConsumeVarint(p); n < 0 {
						d.labels = labels
						return wireError("TimeSeries.labels_refs", n)
					}
					p = p[n:]
				}
				if uint64(uint32(ref)) >= uint64(len(d.symbols)) {
					d.labels = labels
					_, err := d.symbol(ref)
					return err
				}
				s := d.symbols[uint32(ref)]
				if !haveName {
					lname, haveName = s, true
					continue
				}
				haveName = false
				nlabels++
				if nlabels <= maxLabels {
					labels = append(labels, batch.Label{Name: lname, Value: s})
				}
			}
			d.labels = labels
		case num >= 2 && num <= 5 && wt == protowire.BytesType:
			v, n := consumeBytes(m)
			if n < 0 {
				return wireError("TimeSeries", n)
			}
			m = m[n:]
			switch num {
			case 2:
				s, err := sample(v)
				if err != nil {
					return err
				}
				d.samples = append(d.samples, s)
			case 3:
				hist++
			case 4:
				ex++
			case 5:
				t, err := d.metadataV2(v)
				if err != nil {
					return err
				}
				if t >= 0 {
					typ = batch.MetricType(t)
				}
			}
		case num >= 1 && num <= 5:
			return wireTypeError("TimeSeries", wt)
		default:
			n, err := skipField("TimeSeries", num, wt, m)
			if err != nil {
				return err
			}
			m = m[n:]
		}
	}
	if haveName {
		return malformed("odd number of labels_refs")
	}
	if checked && d.symbolsValid && run.name && nlabels <= maxLabels {
		d.enc = enc
		d.appendChecked(lo, slo, elo, hist, ex, typ)
		return nil
	}
	if checked {
		d.labels, kept = unlazy(d.labels, enc, elo), len(enc)
	}
	d.enc = enc[:kept]
	d.endSeries(lo, slo, nlabels, hist, ex, typ, !d.symbolsValid)
	return nil
}

// labelRunV2 is the fast path of seriesV2 over pairs of label references, as labelRunV1 is
// seriesV1's, kept across the labels_refs fields of a series; read is a function of its own that
// calls nothing, for the same reason.
type labelRunV2 struct {
	// prev is the name of the last label read; before the first, "\x00", which only a name
	// starting with a zero byte does not sort after at its first byte: such a name is compared
	// whole, and if it is "\x00" itself, takes the general path.
	prev string
	// name is set when the metric name was read (its value is never empty here).
	name bool
	// left is how many more labels the series may read here: maxLabels less those read. The
	// caller counts the labels read from it.
	left int
	// The bounded limits, unsigned and at most 254, as labelRunV1's: a name or value of 255
	// bytes or more (a longer length in LabelsData) takes the general path.
	maxName, maxValue uint
}

// read reads the pairs of references at the start of p, each below 16384 (one or two bytes),
// checking each label as checkLabels would, as labelRunV1.read does. It stops at the first pair
// that is not such a label, or fails a check, or when enc has no room for the pair's LabelsData
// and wordSlack: need is then the room to make before calling read again, 0 otherwise. The
// symbols must have wordSlack-1 bytes after them for copyWords (see decoder.copyable): a
// reference past them stops read too. It returns how many bytes of p it read.
func (r *labelRunV2) read(p []byte, symbols []string, enc []byte) (i int, _ []byte, need int) {
	e := len(enc)
	dst := unsafe.Pointer(unsafe.SliceData(enc[:cap(enc)]))
	prev, left := r.prev, r.left
	// p's bytes are read without bounds checks: each index is checked against len(p) first.
	pb := unsafe.Pointer(unsafe.SliceData(p))
	at := func(k int) uint { return uint(*(*byte)(unsafe.Add(pb, k))) }
	for i+1 < len(p) {
		// Two references, one or two bytes each.
		r1, j := at(i), i+1
		if r1 >= 0x80 {
			if at(j) >= 0x80 {
				break
			}
			r1, j = r1&0x7f|at(j)<<7, j+1
		}
		if j >= len(p) {
			break
		}
		r2 := at(j)
		j++
		if r2 >= 0x80 {
			if j >= len(p) || at(j) >= 0x80 {
				break
			}
			r2, j = r2&0x7f|at(j)<<7, j+1
		}
		if r1 >= uint(len(symbols)) || r2 >= uint(len(symbols)) || left == 0 {
			break
		}
		ln, lv := symbols[r1], symbols[r2]
		if uint(len(ln)-1) >= r.maxName || uint(len(lv)-1) >= r.maxValue {
			break
		}
		// Sorted: decided by the first bytes unless they are equal (see prev). Neither string
		// is empty.
		if *unsafe.StringData(ln) <= *unsafe.StringData(prev) && !sortsAfter(unsafe.Slice(unsafe.StringData(ln), len(ln)), unsafe.Slice(unsafe.StringData(prev), len(prev))) {
			break
		}
		if len(ln) == len(metricNameLabel) && *unsafe.StringData(ln) == '_' {
			word := binary.LittleEndian.Uint64((*[8]byte)(unsafe.Pointer(unsafe.StringData(ln)))[:])
			if word == typeLabelWord || word == unitLabelWord {
				break // metadata: checkLabels takes it out
			}
			if word == metricNameWord {
				r.name = true
			}
		}
		size := 2 + len(ln) + len(lv)
		if size+wordSlack > cap(enc)-e {
			need = size + wordSlack
			break
		}
		prev = ln
		left--
		// To LabelsData only, as in seriesV1; the value's length after the name's copy, which
		// writes past the name.
		w := unsafe.Add(dst, e)
		*(*byte)(w) = byte(len(ln))
		copyWords(unsafe.Add(w, 1), unsafe.Pointer(unsafe.StringData(ln)), len(ln))
		*(*byte)(unsafe.Add(w, 1+len(ln))) = byte(len(lv))
		copyWords(unsafe.Add(w, 2+len(ln)), unsafe.Pointer(unsafe.StringData(lv)), len(lv))
		e += size
		i = j
	}
	r.prev, r.left = prev, left
	return i, enc[:e], need
}

// metadataV2 decodes an io.prometheus.write.v2.Metadata and returns its type, or -1 when the
// message does not set it (so that a later Metadata field merges as protobuf says). Help and unit
// are not used, but their references are checked like every other.
func (d *decoder) metadataV2(b []byte) (int, error) {
	t := -1
	for len(b) > 0 {
		// The fields as senders write them, in one step each: a one-byte tag and a varint of
		// one or two bytes.
		if len(b) >= 2 && (b[0] == 1<<3|byte(protowire.VarintType) || b[0] == 3<<3|byte(protowire.VarintType) ||
			b[0] == 4<<3|byte(protowire.VarintType)) {
			if v, n := shortVarint(b[1:]); n > 0 {
				if b[0] == 1<<3|byte(protowire.VarintType) {
					t = int(metricType(uint64(v)))
				} else if int(v) >= len(d.symbols) {
					_, err := d.symbol(uint64(v))
					return 0, err
				}
				b = b[1+n:]
				continue
			}
		}
		num, typ, n := consumeTag(b)
		if n < 0 {
			return 0, wireError("Metadata", n)
		}
		b = b[n:]
		switch {
		case (num == 1 || num == 3 || num == 4) && typ == protowire.VarintType:
			v, n := consumeVarint(b)
			if n < 0 {
				return 0, wireError("Metadata", n)
			}
			b = b[n:]
			if num == 1 {
				t = int(metricType(v))
			} else if _, err := d.symbol(v); err != nil {
				return 0, err
			}
		case num == 1 || num == 3 || num == 4:
			return 0, wireTypeError("Metadata", typ)
		default:
			n, err := skipField("Metadata", num, typ, b)
			if err != nil {
				return 0, err
			}
			b = b[n:]
		}
	}
	return t, nil
}

// appendChecked ends a series whose labels, d.labels[lo:], were checked as they were read:
// valid, sorted, with a metric name, nothing to drop; its samples are d.samples[slo:].
func (d *decoder) appendChecked(lo, slo, elo, hist, ex int, typ batch.MetricType) {
	d.seriesTotal++
	hi, shi, ehi := len(d.labels), len(d.samples), len(d.enc)
	d.b.Series = append(d.b.Series, batch.Series{
		Labels: d.labels[lo:hi:hi], LabelsData: d.enc[elo:ehi:ehi], Type: typ, Samples: d.samples[slo:shi:shi],
		Histograms: hist, Exemplars: ex,
	})
}

// endSeries validates the series just decoded into the arenas from lo and slo on, and either keeps
// it or drops it from the arenas and counts it as rejected. checkUTF8 is false when the caller
// already knows every label string is valid UTF-8.
func (d *decoder) endSeries(lo, slo, nlabels, hist, ex int, typ batch.MetricType, checkUTF8 bool) {
	d.seriesTotal++
	ls := d.labels[lo:]
	var (
		r    reason
		bad  string
		name string
		ok   bool
	)
	if nlabels > d.max.maxLabels {
		r = reasonTooManyLabels
	} else {
		var n int
		var labelType batch.MetricType
		n, name, labelType, r, bad, ok = d.checkLabels(ls, checkUTF8)
		if ok {
			if typ == batch.Unknown {
				typ = labelType
			}
			hi, shi := lo+n, len(d.samples)
			d.labels = d.labels[:hi]
			d.b.Series = append(d.b.Series, batch.Series{
				Labels: d.labels[lo:hi:hi], Type: typ, Samples: d.samples[slo:shi:shi], Histograms: hist, Exemplars: ex,
			})
			return
		}
	}
	if d.rejectedSeries == 0 {
		if name == "" {
			name = metricName(ls)
		}
		d.first = rejection{reason: r, metric: name, label: bad}
	}
	d.rejectedSeries++
	d.rejectedSamples[r] += len(d.samples) - slo + hist
	d.labels = d.labels[:lo]
	d.samples = d.samples[:slo]
}

// metricName returns the value of __name__ in unsorted labels, for error messages.
func metricName(ls []batch.Label) string {
	for _, l := range ls {
		if l.Name == metricNameLabel {
			return l.Value
		}
	}
	return ""
}

func compareLabels(a, b batch.Label) int { return strings.Compare(a.Name, b.Name) }

// checkLabels sorts ls by name in place if it is not sorted yet, validates it, and drops labels
// with an empty value, which Prometheus treats as absent, and the metadata labels __type__ and
// __unit__. It returns the number of labels kept (they are ls[:n]), the metric name and the type
// __type__ gave (Unknown without it); or, when the labels are invalid, ok false with the reason
// and the offending label name.
func (d *decoder) checkLabels(ls []batch.Label, checkUTF8 bool) (n int, name string, typ batch.MetricType, r reason, bad string, ok bool) {
	// One comparison per pair finds both disorder and duplicates in the common, sorted case.
	for i := 1; i < len(ls); i++ {
		a, b := ls[i-1].Name, ls[i].Name
		if len(a) > 0 && len(b) > 0 && a[0] < b[0] {
			continue // the usual case, decided by the first byte
		}
		c := strings.Compare(a, b)
		if c == 0 {
			return 0, "", 0, reasonDuplicateLabelName, ls[i].Name, false
		}
		if c > 0 {
			slices.SortFunc(ls, compareLabels)
			for j := 1; j < len(ls); j++ {
				if ls[j-1].Name == ls[j].Name {
					return 0, "", 0, reasonDuplicateLabelName, ls[j].Name, false
				}
			}
			break
		}
	}
	if len(ls) > 0 && ls[0].Name == "" { // the empty name sorts first
		return 0, "", 0, reasonEmptyLabelName, "", false
	}
	lim := d.max
	for i := range ls {
		l := ls[i]
		if len(l.Name) > lim.maxNameLen {
			return 0, "", 0, reasonLabelNameTooLong, l.Name, false
		}
		if len(l.Value) > lim.maxValueLen {
			return 0, "", 0, reasonLabelValueTooLong, l.Name, false
		}
		if checkUTF8 && (!utf8.ValidString(l.Name) || !utf8.ValidString(l.Value)) {
			return 0, "", 0, reasonInvalidUTF8, l.Name, false
		}
		if l.Value == "" {
			continue
		}
		if len(l.Name) == len(metricNameLabel) && l.Name[0] == '_' { // the reserved names are all 8 bytes
			switch l.Name {
			case metricNameLabel:
				name = l.Value
			case typeLabel:
				typ = typeNames[l.Value]
				continue
			case unitLabel:
				continue
			}
		}
		if n != i {
			ls[n] = l
		}
		n++
	}
	if name == "" {
		return 0, "", 0, reasonMissingMetricName, "", false
	}
	return n, name, typ, 0, "", true
}

// errTooManySeries is returned when a request has more series than MaxSeriesPerRequest.
var errTooManySeries = errors.New("too many series")

// finish rejects the whole request when it is over the series limit.
func (d *decoder) finish() error {
	if d.seriesTotal > d.max.maxSeries {
		for _, s := range d.b.Series {
			d.rejectedSamples[reasonTooManySeries] += len(s.Samples) + s.Histograms
		}
		d.rejectedSeries = d.seriesTotal
		d.first = rejection{reason: reasonTooManySeries}
		return fmt.Errorf("%w: %d series, the limit is %d", errTooManySeries, d.seriesTotal, d.lim.maxSeries)
	}
	return nil
}
