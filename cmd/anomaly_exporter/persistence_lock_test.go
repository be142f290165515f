package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLockStorage: a second exporter on the same --storage.path is refused with an error that
// names the directory, while the first holds it; once the first has released it (or ended), it
// is taken again, the lock file left behind notwithstanding.
func TestLockStorage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	first, err := lockStorage(dir)
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, lockFileName))

	_, err = lockStorage(dir)
	require.ErrorContains(t, err, "--storage.path: locking "+dir)

	require.NoError(t, first.Release())
	require.FileExists(t, filepath.Join(dir, lockFileName))
	again, err := lockStorage(dir)
	require.NoError(t, err)
	require.NoError(t, again.Release())

	other := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(other, lockFileName), nil, 0o644))
	l, err := lockStorage(other)
	require.NoError(t, err, "a stale lock file from a crash does not block a start")
	require.NoError(t, l.Release())
}
