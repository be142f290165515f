package remotewrite

import (
	"encoding/binary"
	"math"
	"strings"

	prommodel "github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/remotewrite/wire"
)

// The sender writes the protobuf of its requests by hand (package wire): every point is six
// series (one per output family) that share all labels but __name__, so the labels are encoded
// once per point and only the name and the sample differ from family to family.

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
	snap wire.Snappy

	// v1: each family's __name__ label, encoded.
	nameLabels [detector.NumFamilies][]byte
	// v2: the request's symbol table and the series that refer to it.
	syms   wire.Symbols
	series []byte
}

func newEncoder(message string) *encoder {
	e := &encoder{v2: message == MessageV2, fams: detector.Families()}
	for i, f := range e.fams {
		e.nameLabels[i] = wire.AppendV1Label(nil, prommodel.MetricNameLabel, f.Name)
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
	return e.snap.Encode(e.buf)
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

// sampleLen is the encoded size of a Sample message's content at timestamp t.
func sampleLen(t int64) int { return 1 + 8 + 1 + protowire.SizeVarint(uint64(t)) }

func appendSample(b []byte, v float64, t int64) []byte {
	b = append(b, wire.Sample)
	b = protowire.AppendVarint(b, uint64(sampleLen(t)))
	b = append(b, wire.SampleVal)
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	b = append(b, wire.SampleTime)
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
				e.pre = wire.AppendV1Label(e.pre, l.Name, l.Value)
			} else {
				e.post = wire.AppendV1Label(e.post, l.Name, l.Value)
			}
		}
		smp := 1 + protowire.SizeBytes(sampleLen(p.T))
		for f := range e.fams {
			buf = append(buf, wire.V1Series)
			buf = protowire.AppendVarint(buf, uint64(len(e.pre)+len(e.nameLabels[f])+len(e.post)+smp))
			buf = append(buf, e.pre...)
			buf = append(buf, e.nameLabels[f]...)
			buf = append(buf, e.post...)
			buf = appendSample(buf, p.Value(f), p.T)
		}
	}
	e.buf = buf
}

func (e *encoder) encodeV2(ps []detector.Point) {
	e.syms.Reset()
	var nameRef, helpRef [detector.NumFamilies]uint32
	nameKey := e.syms.Ref(prommodel.MetricNameLabel)
	for f, fam := range e.fams {
		nameRef[f], helpRef[f] = e.syms.Ref(fam.Name), e.syms.Ref(fam.Help)
	}
	series := e.series[:0]
	for k := range ps {
		p := &ps[k]
		at := e.splitLabels(p)
		e.pre, e.post = e.pre[:0], e.post[:0]
		for i, l := range e.lbls {
			n, v := uint64(e.syms.Ref(l.Name)), uint64(e.syms.Ref(l.Value))
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
			series = append(series, wire.V2Series)
			series = protowire.AppendVarint(series, uint64(1+protowire.SizeBytes(refsLen)+smp+1+protowire.SizeBytes(metaLen)))
			series = append(series, wire.Labels)
			series = protowire.AppendVarint(series, uint64(refsLen))
			series = append(series, e.pre...)
			series = protowire.AppendVarint(series, uint64(nameKey))
			series = protowire.AppendVarint(series, uint64(nameRef[f]))
			series = append(series, e.post...)
			series = appendSample(series, p.Value(f), p.T)
			series = append(series, wire.Metadata)
			series = protowire.AppendVarint(series, uint64(metaLen))
			series = append(series, wire.MetaType, wire.MetricTypeGauge, wire.MetaHelp)
			series = protowire.AppendVarint(series, uint64(helpRef[f]))
		}
	}
	e.series = series
	e.buf = append(e.syms.Append(e.buf[:0]), series...)
	e.syms.Release()
}
