package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPeriodStart: a time is before periodStart(n, p) exactly when its period is before n,
// for negative times and at the ends of int64.
func TestPeriodStart(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	edges := []int64{math.MinInt64, math.MinInt64 + 1, math.MinInt64 + dayMs, -dayMs - 1, -dayMs, -1, 0, 1,
		hourMs - 1, hourMs, math.MaxInt64 - dayMs, math.MaxInt64}
	for _, p := range []int64{hourMs, dayMs} {
		for range 20000 {
			x, y := rng.Int64()-rng.Int64N(2)*math.MaxInt64, rng.Int64()-rng.Int64N(2)*math.MaxInt64
			if rng.IntN(2) == 0 {
				y = x + rng.Int64N(3*dayMs) - dayMs
			}
			if rng.IntN(4) == 0 {
				x, y = edges[rng.IntN(len(edges))], edges[rng.IntN(len(edges))]
			}
			n := floorDiv(y, p)
			require.Equal(t, floorDiv(x, p) < n, x < periodStart(n, p), "x %d y %d p %d", x, y, p)
		}
	}
}

// TestObserveShiftedWeeks: the model depends on the calendar only through the hour of day and
// the day of the week, so that a run moved by whole weeks, into negative times too, scores
// every sample the same and ends in the same state.
func TestObserveShiftedWeeks(t *testing.T) {
	const week = 7 * dayMs
	s := DefaultSettings()
	// A week back, to three weeks before the epoch, to 55 years back (before the epoch).
	for _, shift := range []int64{-week, -ms(monday)/week*week - 3*week, -2900 * week} {
		rng := rand.New(rand.NewPCG(13, 14))
		var a, b Model
		ts := ms(monday) + 1234
		for i := range 30000 {
			ts += 60_000 + rng.Int64N(600_000)
			if rng.IntN(3000) == 0 {
				ts += rng.Int64N(2 * dayMs)
			}
			v := 100 + 20*math.Sin(float64(ts)/float64(dayMs)*2*math.Pi) + rng.NormFloat64()
			if rng.IntN(500) == 0 {
				v += 50
			}
			ra := a.Observe(ts, v, &s)
			in := At(ts + shift)
			rb := b.ObserveAt(&in, v, &s)
			require.Equal(t, ra, rb, "sample %d shift %d", i, shift)
		}
		a.firstT, a.lastT = a.firstT+shift, a.lastT+shift
		require.Equal(t, a, b, "shift %d", shift)
	}
}

// TestBucketOffsets: the offsets are those of the hour buckets that the model reads at t,
// before the epoch and at the ends of int64 too.
func TestBucketOffsets(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 16))
	for i := range 100000 {
		ts := rng.Int64() - rng.Int64N(2)*math.MaxInt64
		switch i % 4 {
		case 0:
			ts = rng.Int64N(4*dayMs) - 2*dayMs
		case 1:
			ts = []int64{math.MinInt64, math.MinInt64 + hourMs/2, math.MaxInt64, hourMs/2 - 1, hourMs / 2, 0}[i/4%6]
		}
		in := At(ts)
		a, b := BucketOffsets(ts)
		require.Equal(t, HeadSize+uintptr(in.hd[0])*BucketSize, a, "t %d", ts)
		require.Equal(t, HeadSize+uintptr(in.hd[1])*BucketSize, b, "t %d", ts)
	}
}

// TestProfiles: profiles reads what profile reads, candidate by candidate.
func TestProfiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(17, 18))
	for range 2000 {
		var m Model
		m.none, m.weekly = float32(rng.NormFloat64()), [2]float32{float32(rng.NormFloat64()), float32(rng.NormFloat64())}
		for h := range m.hours {
			m.hours[h] = hourBucket{daily: float32(rng.NormFloat64()), dw: [2]float32{float32(rng.NormFloat64()), float32(rng.NormFloat64())}}
			m.edge[h] = int8(rng.IntN(3) - 1)
		}
		in := At(rng.Int64N(1<<42) - 1<<40)
		c := m.clockAt(&in)
		got := m.profiles(c)
		for k := range numCandidates {
			require.Equal(t, m.profile(k, c), got[k], "candidate %d", k)
		}
	}
}
