package loadgen

import (
	"encoding/binary"
	"math"

	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// This file writes the protobuf of the requests by hand. The parts that never change (a series'
// labels in RW 1.0; a request's symbol table and each series' label references and metadata in
// RW 2.0) are encoded once, when the generator is built; a request then appends, per series, a
// length, those bytes and its samples into a reused buffer. That keeps the generator's CPU per
// sample well below the receiver's, so that it measures the receiver.
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
	tagV1Series   = 1<<3 | 2
	tagV2Symbol   = 4<<3 | 2
	tagV2Series   = 5<<3 | 2
	tagLabels     = 1<<3 | 2
	tagLabelRefs  = 1<<3 | 2
	tagSample     = 2<<3 | 2
	tagMetadata   = 5<<3 | 2
	tagName       = 1<<3 | 2
	tagValue      = 2<<3 | 2
	tagSampleVal  = 1<<3 | 1
	tagSampleTime = 2 << 3
	tagMetaType   = 1 << 3
	tagMetaHelp   = 3 << 3
)

// RW 2.0 metric types.
const (
	metaCounter = 1
	metaGauge   = 2
)

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
	refs   map[string]uint32
	syms   []string
	tmp    []byte
}

// build encodes the chunk of series [lo, hi).
func (b *chunkBuilder) build(o *Options, lo, hi int) chunk {
	c := chunk{series: make([]series, 0, hi-lo), off: make([]uint32, 1, hi-lo+1)}
	if b.p == RW2 {
		clear(b.refs)
		b.syms = append(b.syms[:0], "")
		b.refs[""] = 0
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
				c.pre = append(c.pre, tagLabels)
				c.pre = protowire.AppendVarint(c.pre, uint64(1+protowire.SizeBytes(len(l.name))+1+protowire.SizeBytes(len(l.value))))
				c.pre = appendString(c.pre, tagName, l.name)
				c.pre = appendString(c.pre, tagValue, l.value)
			}
		}
		c.off = append(c.off, uint32(len(c.pre)))
	}
	if b.p == RW2 {
		for _, s := range b.syms {
			c.syms = appendString(c.syms, tagV2Symbol, s)
		}
	}
	return c
}

// appendV2 appends the label refs and the metadata of the series whose labels are in b.labels.
func (b *chunkBuilder) appendV2(dst []byte, name metricName) []byte {
	b.tmp = b.tmp[:0]
	for _, l := range b.labels {
		b.tmp = protowire.AppendVarint(b.tmp, uint64(b.ref(l.name)))
		b.tmp = protowire.AppendVarint(b.tmp, uint64(b.ref(l.value)))
	}
	dst = append(dst, tagLabelRefs)
	dst = protowire.AppendVarint(dst, uint64(len(b.tmp)))
	dst = append(dst, b.tmp...)

	typ := uint64(metaGauge)
	if name.counter {
		typ = metaCounter
	}
	help := uint64(b.ref(name.help))
	dst = append(dst, tagMetadata)
	dst = protowire.AppendVarint(dst, uint64(3+protowire.SizeVarint(help)))
	dst = append(dst, tagMetaType, byte(typ), tagMetaHelp)
	return protowire.AppendVarint(dst, help)
}

// ref is the symbol reference of s in the chunk being built, adding it to the table if new.
func (b *chunkBuilder) ref(s string) uint32 {
	if r, ok := b.refs[s]; ok {
		return r
	}
	r := uint32(len(b.syms))
	b.refs[s] = r
	b.syms = append(b.syms, s)
	return r
}

func appendString(dst []byte, tag byte, s string) []byte {
	dst = append(dst, tag)
	dst = protowire.AppendVarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// encoder is a worker's request buffers and the per-request values shared by all its series.
type encoder struct {
	p      Protocol
	k      int     // samples per series per request
	tms    []int64 // the request's sample timestamps
	tsEnc  [][]byte
	season [numGroups][]season
	buf    []byte // protobuf
	snap   []byte // snappy
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
		e.tsEnc[j] = protowire.AppendVarint(append(e.tsEnc[j][:0], tagSampleTime), uint64(t))
		samplesLen += 2 + 9 + len(e.tsEnc[j])
		for g := range e.season {
			e.season[g][j] = seasonAt(g, t)
		}
	}
	buf := e.buf[:0]
	tag := byte(tagV1Series)
	if e.p == RW2 {
		buf = append(buf, c.syms...)
		tag = tagV2Series
	}
	for i := range c.series {
		s := &c.series[i]
		pre := c.pre[c.off[i]:c.off[i+1]]
		buf = append(buf, tag)
		buf = protowire.AppendVarint(buf, uint64(len(pre)+samplesLen))
		buf = append(buf, pre...)
		season := e.season[s.group]
		for j, t := range e.tms {
			buf = append(buf, tagSample, byte(9+len(e.tsEnc[j])), tagSampleVal)
			buf = binary.LittleEndian.AppendUint64(buf, math.Float64bits(s.value(&season[j], t)))
			buf = append(buf, e.tsEnc[j]...)
		}
	}
	e.buf = buf
	return buf, len(c.series) * e.k
}

// compress snappy-encodes b into the encoder's reused buffer; the result is valid until the next
// call.
func (e *encoder) compress(b []byte) []byte {
	if n := snappy.MaxEncodedLen(len(b)); cap(e.snap) < n {
		e.snap = make([]byte, n+n/8)
	}
	return snappy.Encode(e.snap[:cap(e.snap)], b)
}
