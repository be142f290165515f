package loadgen

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/anomaly-exporter/anomaly_exporter/remotewrite/wire"
)

// This file writes the protobuf of the requests by hand. The parts that never change (a series'
// labels in RW 1.0; a request's symbol table and each series' label references and metadata in
// RW 2.0) are encoded once, when the generator is built; a request then appends, per series, a
// length, those bytes and its samples into a reused buffer. That keeps the generator's CPU per
// sample well below the receiver's, so that it measures the receiver.

// The wire format itself (tags, strings, labels, symbols, snappy) is package wire's, shared
// with the exporter's own remote write.

// chunk is the fixed set of series one request carries, with everything about them that does not
// change from round to round already encoded.
type chunk struct {
	series []series
	pre    []byte   // per series: RW 1.0 its labels, RW 2.0 its label refs and metadata
	off    []uint32 // series i's bytes are pre[off[i]:off[i+1]]
	syms   []byte   // RW 2.0: the symbols field of the request
}

// chunkBuilder encodes chunks, reusing its scratch space from chunk to chunk.
type chunkBuilder struct {
	p      Protocol
	names  []metricName
	labels []label
	syms   wire.Symbols
	tmp    []byte
}

// build encodes the chunk of series [lo, hi).
func (b *chunkBuilder) build(o *Options, lo, hi int) chunk {
	c := chunk{series: make([]series, 0, hi-lo), off: make([]uint32, 1, hi-lo+1)}
	if b.p == RW2 {
		b.syms.Reset()
	}
	for i := lo; i < hi; i++ {
		b.labels = labelSet(b.labels, b.names, i, o.LabelsPerSeries)
		name := b.names[i%len(b.names)]
		code := ""
		for _, l := range b.labels {
			if l.name == "code" {
				code = l.value
			}
		}
		c.series = append(c.series, newSeries(o.Seed, i, name, code, o.Step))
		if b.p == RW2 {
			c.pre = b.appendV2(c.pre, name)
		} else {
			for _, l := range b.labels {
				c.pre = wire.AppendV1Label(c.pre, l.name, l.value)
			}
		}
		c.off = append(c.off, uint32(len(c.pre)))
	}
	if b.p == RW2 {
		c.syms = b.syms.Append(c.syms)
	}
	return c
}

// appendV2 appends the label refs and the metadata of the series whose labels are in b.labels.
func (b *chunkBuilder) appendV2(dst []byte, name metricName) []byte {
	b.tmp = b.tmp[:0]
	for _, l := range b.labels {
		b.tmp = protowire.AppendVarint(b.tmp, uint64(b.syms.Ref(l.name)))
		b.tmp = protowire.AppendVarint(b.tmp, uint64(b.syms.Ref(l.value)))
	}
	dst = append(dst, wire.Labels)
	dst = protowire.AppendVarint(dst, uint64(len(b.tmp)))
	dst = append(dst, b.tmp...)

	typ := uint64(wire.MetricTypeGauge)
	if name.counter {
		typ = wire.MetricTypeCounter
	}
	help := uint64(b.syms.Ref(name.help))
	dst = append(dst, wire.Metadata)
	dst = protowire.AppendVarint(dst, uint64(3+protowire.SizeVarint(help)))
	dst = append(dst, wire.MetaType, byte(typ), wire.MetaHelp)
	return protowire.AppendVarint(dst, help)
}

// encoder is a worker's request buffers and the per-request values shared by all its series.
type encoder struct {
	p      Protocol
	k      int     // samples per series per request
	tms    []int64 // the request's sample timestamps
	tsEnc  [][]byte
	season [numGroups][]season
	buf    []byte // protobuf
	snap   wire.Snappy
}

func newEncoder(p Protocol, k int) *encoder {
	e := &encoder{p: p, k: k, tms: make([]int64, k), tsEnc: make([][]byte, k)}
	for g := range e.season {
		e.season[g] = make([]season, k)
	}
	return e
}

// encode builds the request carrying the samples at times tms[0..k) of every series of c and
// returns its protobuf (valid until the next call) and sample count.
func (e *encoder) encode(c *chunk, firstTms, stepMs int64) ([]byte, int) {
	samplesLen := 0
	for j := range e.k {
		t := firstTms + int64(j)*stepMs
		e.tms[j] = t
		e.tsEnc[j] = protowire.AppendVarint(append(e.tsEnc[j][:0], wire.SampleTime), uint64(t))
		samplesLen += 2 + 9 + len(e.tsEnc[j])
		for g := range e.season {
			e.season[g][j] = seasonAt(g, t)
		}
	}
	buf := e.buf[:0]
	tag := byte(wire.V1Series)
	if e.p == RW2 {
		buf = append(buf, c.syms...)
		tag = wire.V2Series
	}
	for i := range c.series {
		s := &c.series[i]
		pre := c.pre[c.off[i]:c.off[i+1]]
		buf = append(buf, tag)
		buf = protowire.AppendVarint(buf, uint64(len(pre)+samplesLen))
		buf = append(buf, pre...)
		season := e.season[s.group]
		for j, t := range e.tms {
			buf = append(buf, wire.Sample, byte(9+len(e.tsEnc[j])), wire.SampleVal)
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.value(&season[j], t)))
			buf = append(buf, e.tsEnc[j]...)
		}
	}
	e.buf = buf
	return buf, len(c.series) * e.k
}
