package detector

import (
	"strings"
	"sync"

	"github.com/anomaly-exporter/anomaly_exporter/batch"
)

// maxFamilies bounds the family types remembered: a sender with more metric families than this
// is unusual, and the naming conventions still decide for the families beyond it.
const maxFamilies = 1 << 16

// familyTypes remembers the metric type of each family from RW 1.0 metadata, which Prometheus
// sends in requests of its own, so that a series created later is scored as its type says
// (a counter without a _total suffix on its rate, a gauge named *_total on its value).
type familyTypes struct {
	mu sync.RWMutex
	m  map[string]batch.MetricType
}

func (f *familyTypes) learn(md []batch.Metadata) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = make(map[string]batch.MetricType)
	}
	for _, e := range md {
		if t, ok := f.m[e.Family]; ok {
			if t != e.Type {
				f.m[e.Family] = e.Type
			}
			continue
		}
		if len(f.m) < maxFamilies {
			f.m[strings.Clone(e.Family)] = e.Type
		}
	}
}

// typeOf is the remembered type of the series' family, or Unknown.
func (f *familyTypes) typeOf(metric string) batch.MetricType {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.m) == 0 {
		return batch.Unknown
	}
	t, _ := batch.TypeByFamily(metric, func(family string) (batch.MetricType, bool) {
		t, ok := f.m[family]
		return t, ok
	})
	return t
}
