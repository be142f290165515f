// Package model is the online baseline of one series: it learns level, daily and weekly seasons
// and spread from samples in timestamp order, and scores each sample against what it learned
// before seeing it. It is pure arithmetic on sample time: no clock, no I/O, no locks; the
// caller (the detector's store) serialises access per series.
package model
