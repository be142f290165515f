// Package wire writes the protobuf of remote-write requests by hand, for the two places that send
// them: the exporter's own remote write of its scores, and the load generator. Both know their
// series' shape in advance and encode the parts that repeat once, which a generic protobuf
// marshaller cannot; this package holds what they share, so that the field numbers and the
// encodings of strings, labels, symbols and snappy are written once.
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
package wire

import (
	"github.com/golang/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// Tags: field number << 3 | wire type (0 varint, 1 fixed64, 2 length-delimited).
const (
	V1Series   = 1<<3 | 2
	V2Symbol   = 4<<3 | 2
	V2Series   = 5<<3 | 2
	Labels     = 1<<3 | 2 // v1 TimeSeries.labels and v2 TimeSeries.labels_refs (packed)
	Sample     = 2<<3 | 2
	Metadata   = 5<<3 | 2
	Name       = 1<<3 | 2
	Value      = 2<<3 | 2
	SampleVal  = 1<<3 | 1
	SampleTime = 2 << 3
	MetaType   = 1 << 3
	MetaHelp   = 3 << 3
)

// RW 2.0 metric types (io.prometheus.write.v2.Metadata.MetricType).
const (
	MetricTypeCounter = 1
	MetricTypeGauge   = 2
)

// AppendString appends a length-delimited field of tag holding s.
func AppendString(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = protowire.AppendVarint(b, uint64(len(s)))
	return append(b, s...)
}

// AppendV1Label appends one RW 1.0 TimeSeries.labels field.
func AppendV1Label(b []byte, name, value string) []byte {
	b = append(b, Labels)
	b = protowire.AppendVarint(b, uint64(1+protowire.SizeBytes(len(name))+1+protowire.SizeBytes(len(value))))
	b = AppendString(b, Name, name)
	return AppendString(b, Value, value)
}

// Symbols is the symbol table of one RW 2.0 request being built.
type Symbols struct {
	refs map[string]uint32
	list []string
}

// Reset empties the table for a new request; symbols[0] is always the empty string.
func (s *Symbols) Reset() {
	if s.refs == nil {
		s.refs = make(map[string]uint32)
	}
	clear(s.refs)
	s.list = s.list[:0]
	s.Ref("")
}

// Release drops what the table holds of a request once it is encoded, so that its strings are
// not kept alive until the next one (and a huge table's map not at all).
func (s *Symbols) Release() {
	if len(s.list) > 1<<16 {
		s.refs = make(map[string]uint32)
	}
	clear(s.list)
}

// Ref is the reference of str, added to the table if new.
func (s *Symbols) Ref(str string) uint32 {
	if r, ok := s.refs[str]; ok {
		return r
	}
	r := uint32(len(s.list))
	s.refs[str] = r
	s.list = append(s.list, str)
	return r
}

// Append appends the table as the request's symbols fields.
func (s *Symbols) Append(b []byte) []byte {
	for _, str := range s.list {
		b = AppendString(b, V2Symbol, str)
	}
	return b
}

// Snappy compresses requests into a buffer it reuses.
type Snappy struct{ buf []byte }

// Encode returns b snappy-compressed, valid until the next call.
func (z *Snappy) Encode(b []byte) []byte {
	if n := snappy.MaxEncodedLen(len(b)); cap(z.buf) < n {
		z.buf = make([]byte, n+n/8)
	}
	return snappy.Encode(z.buf[:cap(z.buf)], b)
}
