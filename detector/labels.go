package detector

import (
	"hash/maphash"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// A series is known by the encoding of its labels that Prometheus's labels.Labels keeps in its
// default (stringlabels) build (batch.AppendEncoded). Append takes it from the batch, where the
// decoder wrote it, or writes it into one scratch buffer, and hashes each series' bytes twice:
// with xxhash (hashData), whose top bits pick the shard and low 32 bits the index slot, and
// with hash/maphash under a seed drawn when the process starts (checkData), which the entry
// keeps. A sample's series is the entry whose shard, index tag and check all match: 101 bits
// of two unrelated hash functions, the second keyed with a seed that never leaves the process,
// so that two label sets are taken for one series by chance with a probability of about
// n²/2^102 for n series (2e-19 at a million), and a sender cannot compute labels that would do
// it on purpose without the seed (and could write to the other series anyway). Comparing the
// stored labels instead read three more cache lines per sample, scattered over memory the size
// of the store: not reading them took 12% off the CPU per sample end to end. A new series
// keeps a copy of the bytes as its labels.Labels, without building it label by label.

// stringLabels is true when labels.Labels is one string holding the encoding above, which
// init checks on a sample; otherwise (a build with the slicelabels or dedupelabels tag) the
// stored labels are encoded afresh where the encoding is needed (expiry), and the exposition
// writes them label by label: correct but slower.
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

// hashData is the hash of a series, of the encoding of its labels, that places it: its shard
// and index slot, and the order of /scores, the same in every process.
func hashData(enc []byte) uint64 { return xxhash.Sum64(enc) }

// hash is hashData of the entry's labels, which it does not keep: only the rare removal of a
// series needs it.
func (e *entry) hash() uint64 {
	var buf [512]byte
	return xxhash.Sum64String(labelsData(e.labels, buf[:0]))
}

// checkSeed keys checkData, anew in every process.
var checkSeed = maphash.MakeSeed()

// checkData is the hash of a series that tells it from others with its index tag: of the
// encoding of its labels, keyed with checkSeed. It is never stored outside the process.
func checkData(enc []byte) uint64 { return maphash.Bytes(checkSeed, enc) }

// hashLabels hashes labels that arrive one by one (checkpoints, backfill, tests).
func hashLabels(ls []batch.Label) uint64 {
	var buf [512]byte
	return hashData(batch.AppendEncoded(buf[:0], ls))
}
