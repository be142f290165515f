package model

import (
	"encoding/binary"
	"hash/fnv"
	"math"
)

// fingerprintVersion changes whenever the encoding below does, so that a fingerprint kept in a
// checkpoint never equals one computed under another encoding.
const fingerprintVersion = 1

// Fingerprint is a hash of every field of s, stable across processes and restarts so that it can
// be kept in checkpoints. After a config reload, a series whose settings have the same
// fingerprint keeps its model, whichever rule it now matches; equal settings have equal
// fingerprints (-0 and +0 included).
func (s Settings) Fingerprint() uint64 {
	var b [3 + 4*8]byte
	b[0] = fingerprintVersion
	b[1] = byte(s.Seasonality)
	b[2] = byte(s.Direction)
	binary.LittleEndian.PutUint64(b[3:], floatBits(s.Sensitivity))
	binary.LittleEndian.PutUint64(b[11:], floatBits(s.MinAbsDeviation))
	binary.LittleEndian.PutUint64(b[19:], floatBits(s.MinRelDeviation))
	binary.LittleEndian.PutUint64(b[27:], uint64(s.LearningPeriod))
	h := fnv.New64a()
	_, _ = h.Write(b[:])
	return h.Sum64()
}

// floatBits maps -0 to +0 so that equal values hash alike.
func floatBits(v float64) uint64 {
	if v == 0 {
		return 0
	}
	return math.Float64bits(v)
}
