package config

import (
	"encoding/binary"
	"hash/fnv"
	"math"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// Match returns the index of the first rule that matches the series with labels lbls, which must
// be sorted by name as in a batch.Series. A label the series lacks matches as the empty string, as
// in PromQL, so `{env!="prod"}` matches a series without env. It runs for every new series and
// does not allocate.
func (c *Config) Match(lbls []batch.Label) (rule int, ok bool) {
	for i := range c.Rules {
		if c.Rules[i].Matches(lbls) {
			return i, true
		}
	}
	return -1, false
}

// Matches reports whether the rule selects the series with labels lbls (sorted by name). A rule
// without matchers selects every series.
func (r *Rule) Matches(lbls []batch.Label) bool {
	for _, m := range r.Matchers {
		if !m.Matches(labelValue(lbls, m.Name)) {
			return false
		}
	}
	return true
}

// labelValue finds name in the sorted lbls by binary search; "" when absent.
func labelValue(lbls []batch.Label, name string) string {
	lo, hi := 0, len(lbls)
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if lbls[mid].Name < name {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo < len(lbls) && lbls[lo].Name == name {
		return lbls[lo].Value
	}
	return ""
}

// Fingerprint identifies the rule's settings, not its name or selector: after a reload, a series
// whose rule's fingerprint is unchanged keeps its model, even when it moved to another rule, and
// only a series whose settings really changed starts learning again.
func (r *Rule) Fingerprint() uint64 { return SettingsFingerprint(r.Settings) }

// fingerprintVersion changes whenever the encoding below does, so that a fingerprint kept in a
// checkpoint never equals one computed under another encoding.
const fingerprintVersion = 1

// SettingsFingerprint is a hash of every field of s, stable across processes and restarts so that
// it can be kept in checkpoints. Settings that compare equal have equal fingerprints (-0 and +0
// included).
func SettingsFingerprint(s model.Settings) uint64 {
	var b [3 + 4*8]byte
	b[0] = fingerprintVersion
	b[1] = byte(s.Seasonality)
	b[2] = byte(s.Direction)
	binary.LittleEndian.PutUint64(b[3:], floatBits(s.Sensitivity))
	binary.LittleEndian.PutUint64(b[11:], floatBits(s.MinAbsDeviation))
	binary.LittleEndian.PutUint64(b[19:], floatBits(s.MinRelDeviation))
	binary.LittleEndian.PutUint64(b[27:], uint64(s.LearningPeriod))
	h := fnv.New64a()
	h.Write(b[:])
	return h.Sum64()
}

// floatBits maps -0 to +0 so that equal values hash alike.
func floatBits(v float64) uint64 {
	if v == 0 {
		return 0
	}
	return math.Float64bits(v)
}
