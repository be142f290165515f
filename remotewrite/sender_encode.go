package remotewrite

import (
	"encoding/binary"
	"math"
	"strings"

	"github.com/golang/snappy"
	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
)

// The sender writes the protobuf of its requests by hand, as loadgen does: every point is six
// series (one per output family) that share all labels but __name__, so the labels are encoded
// once per point and only the name and the sample differ from family to family.
//
// Field numbers, from prompb/remote.proto, prompb/types.proto and
// prompb/io/prometheus/write/v2/types.proto:
//
//	prometheus.WriteRequest         timeseries=1
//	prometheus.TimeSeries           labels=1 samples=2
//	prometheus.Label                name=1 value=2
//	prometheus.Sample               value=1 (double) timestamp=2 (int64)
//	io.prometheus.write.v2.Request  symbols=4 timeseries=5
//	...v2.TimeSeries                labels_refs=1 (packed) samples=2 metadata=5
//	...v2.Sample                    value=1 timestamp=2
//	...v2.Metadata                  type=1 help_ref=3

// Tags: field number << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited).
const (
	encV1Series   = 1<<3 | 2
	encV2Symbol   = 4<<3 | 2
	encV2Series   = 5<<3 | 2
	encLabel      = 1<<3 | 2 // v1 TimeSeries.labels and v2 TimeSeries.labels_refs
	encSample     = 2<<3 | 2
	encMetadata   = 5<<3 | 2
	encName       = 1<<3 | 2
	encValue      = 2<<3 | 2
	encSampleVal  = 1<<3 | 1
	encSampleTime = 2 << 3
	encMetaType   = 1 << 3
	encMetaHelp   = 3 << 3
	encV2Gauge    = 2 // io.prometheus.write.v2.Metadata.METRIC_TYPE_GAUGE
)

// Protobuf messages the sender can send, named as in Prometheus's remote_write protobuf_message.
const (
	MessageV1 = "prometheus.WriteRequest"
	MessageV2 = "io.prometheus.write.v2.Request"
)

// encoder builds requests from points, reusing its buffers; one per sending goroutine.
type encoder struct {
	v2   bool
	fams []detector.Family
	lbls []labels.Label
	pre  []byte // v1: the labels before __name__; v2: their refs
	post []byte // after __name__
	buf  []byte // the request's protobuf
	snap []byte // snappy

	// v1: each family's __name__ label, encoded.
	nameLabels [detector.NumFamilies][]byte
	// v2: the request's symbol table and the series that refer to it.
	refs   map[string]uint32
	syms   []string
	series []byte
}

func newEncoder(message string) *encoder {
	e := &encoder{v2: message == MessageV2, fams: detector.Families()}
	for i, f := range e.fams {
		e.nameLabels[i] = appendV1Label(nil, prommodel.MetricNameLabel, f.Name)
	}
	if e.v2 {
		e.refs = make(map[string]uint32)
	}
	return e
}

// encode returns the snappy-compressed request carrying the points, valid until the next call.
func (e *encoder) encode(ps []detector.Point) []byte {
	if e.v2 {
		e.encodeV2(ps)
	} else {
		e.encodeV1(ps)
	}
	if n := snappy.MaxEncodedLen(len(e.buf)); cap(e.snap) < n {
		e.snap = make([]byte, n+n/8)
	}
	return snappy.Encode(e.snap[:cap(e.snap)], e.buf)
}

// splitLabels sets e.lbls to the point's output labels (without __name__, sorted) and returns
// where __name__ goes among them.
func (e *encoder) splitLabels(p *detector.Point) int {
	e.lbls = p.AppendLabels(e.lbls[:0])
	i := 0
	for i < len(e.lbls) && strings.Compare(e.lbls[i].Name, prommodel.MetricNameLabel) < 0 {
		i++
	}
	return i
}

func appendV1Label(b []byte, name, value string) []byte {
	b = append(b, encLabel)
	b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(len(name))+1+protowire.SizeBytes(len(value))))
	b = appendStr(b, encName, name)
	return appendStr(b, encValue, value)
}

func appendStr(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = protowire.AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// sampleLen is the encoded size of a Sample message's content at timestamp t.
func sampleLen(t int64) int { return 1 + 8 + 1 + protowire.SizeVarint(uint64(t)) }

func appendSample(b []byte, v float64, t int64) []byte {
	b = append(b, encSample)
	b = protowire.AppendVarint(b, uint64(sampleLen(t)))
	b = append(b, encSampleVal)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	b = append(b, encSampleTime)
	return protowire.AppendVarint(b, uint64(t))
}

func (e *encoder) encodeV1(ps []detector.Point) {
	buf := e.buf[:0]
	for k := range ps {
		p := &ps[k]
		at := e.splitLabels(p)
		e.pre, e.post = e.pre[:0], e.post[:0]
		for i, l := range e.lbls {
			if i < at {
				e.pre = appendV1Label(e.pre, l.Name, l.Value)
			} else {
				e.post = appendV1Label(e.post, l.Name, l.Value)
			}
		}
		smp := 1 + protowire.SizeBytes(sampleLen(p.T))
		for f := range e.fams {
			buf = append(buf, encV1Series)
			buf = protowire.AppendVarint(buf, uint64(len(e.pre)+len(e.nameLabels[f])+len(e.post)+smp))
			buf = append(buf, e.pre...)
			buf = append(buf, e.nameLabels[f]...)
			buf = append(buf, e.post...)
			buf = appendSample(buf, p.Value(f), p.T)
		}
	}
	e.buf = buf
}

// ref is the symbol reference of s in the request being built, adding it to the table if new.
func (e *encoder) ref(s string) uint32 {
	if r, ok := e.refs[s]; ok {
		return r
	}
	r := uint32(len(e.syms))
	e.refs[s] = r
	e.syms = append(e.syms, s)
	return r
}

func (e *encoder) encodeV2(ps []detector.Point) {
	clear(e.refs)
	e.syms = e.syms[:0]
	e.ref("") // symbols[0] is always the empty string
	var nameRef, helpRef [detector.NumFamilies]uint32
	nameKey := e.ref(prommodel.MetricNameLabel)
	for f, fam := range e.fams {
		nameRef[f], helpRef[f] = e.ref(fam.Name), e.ref(fam.Help)
	}
	series := e.series[:0]
	for k := range ps {
		p := &ps[k]
		at := e.splitLabels(p)
		e.pre, e.post = e.pre[:0], e.post[:0]
		for i, l := range e.lbls {
			n, v := uint64(e.ref(l.Name)), uint64(e.ref(l.Value))
			if i < at {
				e.pre = protowire.AppendVarint(protowire.AppendVarint(e.pre, n), v)
			} else {
				e.post = protowire.AppendVarint(protowire.AppendVarint(e.post, n), v)
			}
		}
		smp := 1 + protowire.SizeBytes(sampleLen(p.T))
		for f := range e.fams {
			refsLen := len(e.pre) + protowire.SizeVarint(uint64(nameKey)) + protowire.SizeVarint(uint64(nameRef[f])) + len(e.post)
			metaLen := 2 + 1 + protowire.SizeVarint(uint64(helpRef[f]))
			series = append(series, encV2Series)
			series = protowire.AppendVarint(series, uint64(1+protowire.SizeBytes(refsLen)+smp+1+protowire.SizeBytes(metaLen)))
			series = append(series, encLabel)
			series = protowire.AppendVarint(series, uint64(refsLen))
			series = append(series, e.pre...)
			series = protowire.AppendVarint(series, uint64(nameKey))
			series = protowire.AppendVarint(series, uint64(nameRef[f]))
			series = append(series, e.post...)
			series = appendSample(series, p.Value(f), p.T)
			series = append(series, encMetadata)
			series = protowire.AppendVarint(series, uint64(metaLen))
			series = append(series, encMetaType, encV2Gauge, encMetaHelp)
			series = protowire.AppendVarint(series, uint64(helpRef[f]))
		}
	}
	e.series = series
	buf := e.buf[:0]
	for _, s := range e.syms {
		buf = appendStr(buf, encV2Symbol, s)
	}
	e.buf = append(buf, series...)
	if len(e.syms) > 1<<16 {
		// Do not keep a huge table's strings alive between requests.
		e.refs = make(map[string]uint32)
	}
	clear(e.syms)
}
