package config

import (
	"time"

	"github.com/anomaly-exporter/anomaly_exporter/detector"
	"github.com/anomaly-exporter/anomaly_exporter/detector/model"
)

// StoreOptions are the parts of the configuration the detector's store acts on, derived in one
// place so that the server, backfill and offline tools run the same rules and limits.
func (c *Config) StoreOptions() detector.Options {
	settings := make([]model.Settings, len(c.Rules))
	for i := range c.Rules {
		settings[i] = c.Rules[i].Settings
	}
	return detector.Options{
		Rules:        c,
		Settings:     settings,
		MaxSeries:    c.Global.MaxSeries,
		StaleAfter:   time.Duration(c.Global.StaleAfter),
		SeriesExpiry: time.Duration(c.Global.SeriesExpiry),
	}
}
