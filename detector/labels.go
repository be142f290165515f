package detector

import (
	"slices"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// A series is identified by the encoding of its labels that Prometheus's labels.Labels keeps in
// its default (stringlabels) build: every name and value preceded by its length, one byte below
// 255, else 255 and three bytes little-endian. Append writes the labels of a request's series in
// that encoding into one scratch buffer, hashes each series' bytes in one call, and compares them
// with the stored series' string in one comparison; a new series keeps a copy of the bytes as its
// labels.Labels, without building it label by label.

// stringLabels is true when labels.Labels is one string holding the encoding above, which
// init checks on a sample; otherwise (a build with the slicelabels or dedupelabels tag) the
// stored labels are encoded afresh for each comparison, correct but slower.
var stringLabels = func() bool {
	ls := labels.FromStrings("__name__", "up", "a", string(make([]byte, 300)))
	return unsafe.Sizeof(ls) == unsafe.Sizeof("") &&
		*(*string)(unsafe.Pointer(&ls)) == string(appendEncodedLabels(nil, toBatchLabels(ls)))
}()

// appendEncodedLabels appends the encoding of ls to b. It runs for every series of every
// request: the size is summed first so that the bytes are written in place, with no capacity
// check per string.
func appendEncodedLabels(b []byte, ls []batch.Label) []byte {
	size := 0
	for i := range ls {
		size += encodedLen(ls[i].Name) + encodedLen(ls[i].Value)
	}
	off := len(b)
	b = slices.Grow(b, size)[:off+size]
	for i := range ls {
		off = putEncodedString(b, off, ls[i].Name)
		off = putEncodedString(b, off, ls[i].Value)
	}
	return b
}

// encodedLen is the length of the encoding of s: its length prefix and its bytes.
func encodedLen(s string) int {
	if len(s) < 255 {
		return 1 + len(s)
	}
	return 4 + len(s)
}

// putEncodedString writes the encoding of s at b[off:], which has room for it, and returns the
// offset after it.
func putEncodedString(b []byte, off int, s string) int {
	if n := len(s); n < 255 {
		b[off] = byte(n)
		off++
	} else {
		b[off], b[off+1], b[off+2], b[off+3] = 255, byte(n), byte(n>>8), byte(n>>16)
		off += 4
	}
	return off + copy(b[off:], s)
}

// labelsData returns the encoding of ls: its own string in the default build (no copy), else
// built in buf.
func labelsData(ls labels.Labels, buf []byte) string {
	if stringLabels {
		return *(*string)(unsafe.Pointer(&ls))
	}
	return string(appendEncodedLabels(buf[:0], toBatchLabels(ls)))
}

// labelsFromData returns labels.Labels holding a copy of enc, the encoding of ls.
func labelsFromData(enc []byte, ls []batch.Label) labels.Labels {
	if stringLabels {
		s := string(enc)
		return *(*labels.Labels)(unsafe.Pointer(&s))
	}
	b := labels.NewScratchBuilder(len(ls))
	for _, l := range ls {
		b.Add(l.Name, l.Value)
	}
	return b.Labels()
}

// hashData is the hash of a series: of the encoding of its labels.
func hashData(enc []byte) uint64 { return xxhash.Sum64(enc) }

// hashLabels hashes labels that arrive one by one (checkpoints, backfill, tests).
func hashLabels(ls []batch.Label) uint64 {
	var buf [512]byte
	return hashData(appendEncodedLabels(buf[:0], ls))
}
