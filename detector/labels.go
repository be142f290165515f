package detector

import (
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// A series is identified by the encoding of its labels that Prometheus's labels.Labels keeps in
// its default (stringlabels) build (batch.AppendEncoded). Append takes it from the batch, where
// the decoder wrote it, or writes it into one scratch buffer, hashes each series' bytes in one
// call, and compares them with the stored series' string in one comparison; a new series keeps a
// copy of the bytes as its labels.Labels, without building it label by label.

// stringLabels is true when labels.Labels is one string holding the encoding above, which
// init checks on a sample; otherwise (a build with the slicelabels or dedupelabels tag) the
// stored labels are encoded afresh for each comparison, correct but slower.
var stringLabels = func() bool {
	ls := labels.FromStrings("__name__", "up", "a", string(make([]byte, 300)))
	return unsafe.Sizeof(ls) == unsafe.Sizeof("") &&
		*(*string)(unsafe.Pointer(&ls)) == string(batch.AppendEncoded(nil, toBatchLabels(ls)))
}()

// labelsData returns the encoding of ls: its own string in the default build (no copy), else
// built in buf.
func labelsData(ls labels.Labels, buf []byte) string {
	if stringLabels {
		return *(*string)(unsafe.Pointer(&ls))
	}
	return string(batch.AppendEncoded(buf[:0], toBatchLabels(ls)))
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
	return hashData(batch.AppendEncoded(buf[:0], ls))
}
