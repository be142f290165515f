package config

import (
	"github.com/anomaly-exporter/anomaly_exporter/batch"
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
func (r *Rule) Fingerprint() uint64 { return r.Settings.Fingerprint() }
