package main

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestParallelGzip: what parallelGzip writes is one gzip member of exactly what was written to
// it, whatever the sizes of the writes and of the whole (empty, under a block, whole blocks and
// more), with matches across block boundaries.
func TestParallelGzip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	line := []byte(`anomaly_score{container="app",instance="10.0.1.60:8080",job="api",anomaly_metric="x"} 0.25` + "\n")
	for _, size := range []int{0, 1, 1000, gzBlockSize - 1, gzBlockSize, gzBlockSize + 1, 3*gzBlockSize + 12345} {
		in := make([]byte, 0, size)
		for len(in) < size {
			if rng.IntN(10) == 0 {
				in = append(in, byte(rng.Uint32())) // some noise between the repeats
			} else {
				in = append(in, line[:min(len(line), size-len(in))]...)
			}
		}
		var out bytes.Buffer
		z := newParallelGzip(&out)
		for rest := in; len(rest) > 0; {
			n := min(len(rest), 1+rng.IntN(100<<10))
			k, err := z.Write(rest[:n])
			require.NoError(t, err)
			require.Equal(t, n, k)
			rest = rest[n:]
		}
		require.NoError(t, z.Close())

		zr, err := gzip.NewReader(&out)
		require.NoError(t, err)
		zr.Multistream(false) // one member, not several
		got, err := io.ReadAll(zr)
		require.NoError(t, err, "size %d", size)
		require.Equal(t, in, got, "size %d", size)
		rest, err := io.ReadAll(&out)
		require.NoError(t, err)
		require.Empty(t, rest, "size %d: nothing after the member", size)
		if size > 1000 {
			require.Less(t, out.Len(), size/3, "size %d: compressed", size)
		}
	}
}

// TestParallelGzipWriteError: once the output fails, writes fail and Close returns the error.
func TestParallelGzipWriteError(t *testing.T) {
	fail := errors.New("connection reset")
	z := newParallelGzip(failingWriter{fail})
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	var err error
	for range 1000 {
		if _, err = z.Write(chunk); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, errGzipFailed)
	require.ErrorIs(t, z.Close(), fail)
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }
