// Package backtest replays recorded history through the detector and measures how well its
// scores find labelled anomalies.
//
// Replay goes through detector.Stream, the very path the server uses for live samples, so a
// backtest shows what the server would have said at the time, sample by sample, with no
// look-ahead. Scoring follows the rules of the Numenta Anomaly Benchmark (NAB): early detection
// inside a labelled window is rewarded, detections outside windows cost, missed windows cost more,
// and one threshold is chosen for a whole corpus, as an operator chooses one alert threshold for
// all series.
package backtest
