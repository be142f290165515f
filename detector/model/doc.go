// Package model is the online baseline of one series: it learns level, daily and weekly seasons and
// spread from samples in timestamp order, and scores each sample against what it learned before
// seeing it. It is pure arithmetic on sample time: no clock, no I/O, no locks; the caller (the
// detector's store) serialises access per series.
//
// # The model
//
// Every series runs four candidate models side by side, each predicting the next sample as a
// profile plus an offset: a level alone, which follows a damped trend (Holt's linear method: the
// slope learns the level's corrections per hour over about three hours and fades over six, so
// that a ramp is followed rather than lagged by the level's memory); a level with a 24-hour
// profile; a weekday level and a weekend level; and a 24-hour profile for weekdays and another for
// weekends (days in UTC).
// Profiles have one bucket per hour, read with linear interpolation between bucket centres so that
// a smooth daily curve sampled every few minutes fits without steps. A profile that steps at an
// hour (business hours, a cron job) is read as a step there instead: each hour keeps a saturating
// vote, cast by the samples between the two centres around its start, on whether a step at the
// start of the hour or the ramp between the centres predicts them better by more than the noise,
// and the profiles and the hourly spread are read and learned as a step where the step leads. A
// ramp fits a step at the hour by half the step an hour a day, which both widens the band there
// and lets a level-only candidate keep up with the profile. A bucket learns as the average
// of its first visits (so one day fills a daily profile) and then with a memory of about four
// visits. The offset follows what the profile does not explain yet (today is busier than usual)
// within hours, and hands it over to the profile as the profile learns it. All smoothing weights
// come from the time between samples (1-exp(-dt/tau)), so irregular sampling, bursts and gaps need
// no special case; a gap weighs at most an hour.
//
// Which seasons a series has is measured, not assumed: every candidate learns every sample and
// keeps its mean squared one-step error over about two days, computed before it learns the sample,
// so that hours of an anomaly (an outage) do not hand the scoring to the candidate that absorbs it
// fastest (a level without a season) just when the season is what tells the anomaly from the
// normal. While a candidate's profile is in its first visit it has no prediction of its own to be
// judged on, and is credited with the level candidate's error instead. The level candidate's error
// is measured without its trend's step for the sample: a season that a profile knows ahead is
// what the trend learns only after the fact. The simplest candidate
// scores unless a richer one has a mean squared error at least five ninths lower (a third in root
// mean square), and a richer one keeps scoring until a simpler one is a sixth lower: the level
// alone follows a smooth series within the hour and comes close to a season in one-step error,
// and must not take the score back for a night and explain away what happens. The daily profile
// may be chosen after two days (one to learn it, one to test it out of sample), the weekly ones
// after two weekdays and two weekend days. Settings.Seasonality forces a candidate instead.
//
// The spread is the mean absolute one-step error, per candidate and, for the scoring candidate, per
// hour of day, since many series are noisier at their peak. The band is never narrower than what
// the series' own tail of standardised errors (error over the spread at the time) makes a
// one-in-3300 event: the tail is modelled as peaks over its 2% quantile with an exponential tail
// beyond, starting from a normal error's, so that a series whose normal has bursts or spikes now
// and then learns them as normal, while one with normal errors keeps its 4-sigma band. The tail is
// never taken as lighter than a normal one relative to its quantile: when the quantile falls among
// spikes of much the same height that come often (a job every hour), extrapolating the small
// excess above it would put the band's edge among the spikes, each one then scoring near 1.
// A seasonal candidate judges an episode with the tail it had when the episode began: while its
// residuals stay beyond half the band on one side, the tail's factor in the band is held there,
// though the tail goes on learning, and the hourly spread learns its residuals clipped at 2.5
// sigmas, like the rest of the state, rather than at 20. A day without its daily peak (a holiday,
// a nightly job that did not run) departs from the profile by a little more at every sample, and a tail that learned the
// departure as fast as it grew kept a missed peak of 20 sigmas at about 1, never flagged; now it
// is a level change. The level-only candidate's tail is not held: it lags a smooth series by
// construction, so that runs of large residuals on one side are part of its normal.
//
// A spike at the same time every day (a backup, a cron job) is normal too: each hour of the day
// keeps a fading peak of the standardised errors seen in it, which moves half way to a larger error
// at the end of each visit and otherwise fades by about a fifth per visit, but not below the
// largest error of the visit, and the band within 15 minutes of that hour is at least 1.25 times
// that peak. A daily spike is flagged on its first days, then learned, and settles at about 0.8
// of the band (fading before rising, it settled just under the band's edge); a one-off fades
// within a week; and the hour in progress never widens its own band, so that a burst is flagged
// while it lasts. While a profile bucket is in its first visit it takes up the whole error and the offset stays 0: there is no profile yet whose error the offset
// could be. Every update clips the error at 2.5 sigmas (Huber), so that a spike cannot drag the
// baseline. Three errors in a row outside the band on the same side whose scores stand for at least
// 15 minutes of sample time (a score stands until the next sample) are a level change: the
// candidate jumps to the new level, so a lasting change is flagged for three samples or 15 minutes,
// whichever is longer (long enough for an alert with a `for` of a few minutes to fire once, and no
// longer, as every sample flagged beyond that is one more false positive), and then is the new
// normal. The step is remembered for some hours, so that a return to the level before it is normal
// too. A level change is a change at every hour of the day: while a seasonal candidate remembers
// its step, the hours it visits do not learn the step from the offset, and as the memory fades the
// step moves from the offset into every hour of the profile at once (had each hour taken it from
// the offset as it was visited, the hours not yet visited since the change would have been
// expected at the old level again within hours).
//
// Spikes a few hours apart are one episode, and an alert for each is noise: a new excursion out
// of the band (one that does not continue an out-of-band run on its side) is scored against at
// least twice the largest deviation of the recent samples outside the band, a memory that fades
// by half every three hours. A burst of spikes is flagged at its first spike and again only at
// one more than twice as large; a spike like it three hours later is news again. An excursion
// that this keeps under 1 does not count towards a level change, so that a level change right
// after a spike is still flagged for three samples in a row, and a run of samples out of the
// band (a level change, a burst of noise) is flagged in full as before.
//
// # The score
//
// The band is Expected ± h, with h = max(4 sigma / Sensitivity, MinAbsDeviation, MinRelDeviation
// |Expected|); when neither minimum is set, h is at least 0.1% of |Expected| (and 1e-9), so that a
// perfectly constant series flags a real change but no rounding. The score is |value - Expected| /
// h: 0 at the expected value, 1 at the band's edge, growing linearly beyond (capped at 1e9 so that
// it stays finite); with Direction up or down, deviations to the other side score 0. At 4 sigmas a
// series with normal errors leaves its band once in some ten thousand samples.
//
// A flatline scores too, whatever the direction: a run of samples that repeat the value exactly
// (a stuck exporter, a rate of 0; equal within float rounding) scores its length over the length
// that the series' own rate of repeats makes a 1-in-10,000 event (at least 3, and 1.5 times the
// longest such run of the last days); a shorter run adds nothing to the score, which would
// otherwise rank a value repeated once or twice with deviations near the band's edge. Nothing
// short of a repeat counts: a tolerance relative to the spread made every quiet spell of a spiky
// series (CPU at 2% with bursts to 60%, whose spread the bursts set) a flatline. Like a level change, a flatline scores above 1 for three samples or 15
// minutes and is then the new normal until the series moves again. A series that repeats itself at
// least half the time is never flatlining, and one that stays flat becomes flat in the model's eyes
// within hours.
//
// A value beyond any the series has had since its first sample, by more than a sigma of its
// spread, scores above 1 too, whatever the band says: 1 at a sigma beyond the highest (or
// lowest) value seen, growing beyond it as a score grows beyond the band's edge. A drift (a
// temperature climbing for days as cooling fails, traffic sinking below any night's) moves a
// little at every sample and is followed by the level, its trend and the spread, so that no
// sample leaves the band; where it goes is what tells it. A record is news only where records
// are rare, so the range scores only while fewer than one in twenty of about the last 64
// samples were records: a ramp or a growing series sets one at every sample and is flagged at
// most at its onset, like a level change, and a young series, whose range is still being
// found, starts as if every sample were a record.
//
// Result.Learning is true until the samples cover Settings.LearningPeriod of sample time from the
// first one. Scores are computed while learning, but the series should page no one.
package model
