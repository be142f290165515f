package detector

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestIndexAgainstMap adds and deletes at random, with many hashes sharing tags and home slots,
// and checks after every step that the index finds exactly what a map of the same mappings has.
func TestIndexAgainstMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var x index
	want := map[int32]uint64{} // entry slot → hash
	hashes := make([]uint64, 64)
	for i := range hashes {
		// Few distinct tags, at the end and the start of any table: long probe runs that wrap
		// around it.
		hashes[i] = uint64(rng.Uint32())<<32 | uint64(uint32(rng.IntN(24)-12))
	}
	check := func() {
		require.Equal(t, len(want), x.len())
		for i, h := range want {
			found := false
			for c := x.find(h); ; {
				j := c.next()
				if j < 0 {
					break
				}
				found = found || j == i
			}
			require.True(t, found, "slot %d of hash %x", i, h)
		}
	}
	next := int32(0)
	for step := range 3000 {
		if len(want) > 0 && rng.IntN(5) < 2 {
			for i, h := range want { // a random one: map order
				x.delete(h, i)
				delete(want, i)
				break
			}
		} else {
			h := hashes[rng.IntN(len(hashes))]
			x.add(h, next)
			want[next] = h
			next++
		}
		if step%37 == 0 {
			check()
		}
	}
	check()
	for i, h := range want {
		x.delete(h, i)
	}
	require.Zero(t, x.len())
	for _, s := range x.slots {
		require.Zero(t, s)
	}
	require.Equal(t, int32(-1), x.first(hashes[0]))
}
