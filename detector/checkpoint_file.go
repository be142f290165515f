package detector

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CheckpointFileName is the checkpoint's name in the storage directory.
const CheckpointFileName = "checkpoint"

// CheckpointStats describe one checkpoint written or read.
type CheckpointStats struct {
	Path     string
	Series   int
	Bytes    int64
	Duration time.Duration
}

// WriteCheckpointFile writes the store's checkpoint to path so that a crash at any moment leaves
// either the previous checkpoint or the new one, whole: it is written to path+".tmp", synced to
// disk, renamed over path, and the directory is synced so that the rename is durable too.
func WriteCheckpointFile(s *Store, path string) (CheckpointStats, error) {
	start := time.Now()
	st := CheckpointStats{Path: path}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return st, err
	}
	st.Bytes, st.Series, err = s.writeCheckpoint(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return st, err
	}
	if err := syncDir(filepath.Dir(path)); err != nil {
		return st, err
	}
	st.Duration = time.Since(start)
	return st, nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be synced there; the rename is durable by itself
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// CheckpointLoadError is a checkpoint that could not be loaded and was moved aside.
type CheckpointLoadError struct {
	Path string
	// MovedTo is where the file now is ("" if it could not be moved).
	MovedTo string
	Err     error
}

func (e *CheckpointLoadError) Error() string {
	if e.MovedTo == "" {
		return fmt.Sprintf("loading checkpoint %s: %v", e.Path, e.Err)
	}
	return fmt.Sprintf("loading checkpoint %s: %v (moved to %s)", e.Path, e.Err, e.MovedTo)
}

func (e *CheckpointLoadError) Unwrap() error { return e.Err }

// LoadCheckpointFile loads the checkpoint at path into the store. A missing file is no error: the
// store stays as it is (Series 0). A file that cannot be read or decoded, or was written under
// another model layout, is renamed to path+".corrupt-<unix seconds>", so that the next checkpoint
// does not overwrite what an operator may want to look at, and a *CheckpointLoadError is
// returned; the store is left as it was. A temporary file left by a crash during a write is
// removed.
func LoadCheckpointFile(s *Store, path string) (CheckpointStats, error) {
	start := time.Now()
	st := CheckpointStats{Path: path}
	_ = os.Remove(path + ".tmp")
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			st.Bytes = fi.Size()
			st.Series, err = s.LoadCheckpoint(f)
		}
		f.Close()
	}
	st.Duration = time.Since(start)
	if err != nil {
		le := &CheckpointLoadError{Path: path, Err: err}
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().Unix())
		if rerr := os.Rename(path, aside); rerr == nil {
			le.MovedTo = aside
		}
		return st, le
	}
	return st, nil
}

// Checkpointer writes the store's checkpoint to a directory and restores it from there, keeping
// the self metrics of both. Save may be called from several goroutines: writes are serialised.
type Checkpointer struct {
	store *Store
	path  string
	mu    sync.Mutex

	lastSuccess     prometheus.Gauge
	duration        prometheus.Gauge
	size            prometheus.Gauge
	series          prometheus.Gauge
	failures        prometheus.Counter
	restoreFailures prometheus.Counter
	restored        prometheus.Gauge
	restoreDuration prometheus.Gauge
}

// NewCheckpointer returns a Checkpointer of the store for the directory dir, registering its
// metrics with reg. The directory is created when missing.
func NewCheckpointer(s *Store, dir string, reg prometheus.Registerer) (*Checkpointer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	const ns, sub = "anomaly_exporter", "checkpoint"
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	c := &Checkpointer{
		store:           s,
		path:            filepath.Join(dir, CheckpointFileName),
		lastSuccess:     gauge("last_success_timestamp_seconds", "Time of the last checkpoint written successfully."),
		duration:        gauge("last_duration_seconds", "Time the last successful checkpoint took to write and sync."),
		size:            gauge("last_size_bytes", "Size of the last checkpoint written."),
		series:          gauge("last_series", "Series in the last checkpoint written."),
		failures:        counter("failures_total", "Checkpoints that failed to be written; the previous checkpoint stays in place."),
		restoreFailures: counter("restore_failures_total", "Checkpoints that could not be restored at start (unreadable, corrupt or of another model layout) and were moved aside."),
		restored:        gauge("restored_series", "Series restored from the checkpoint at start."),
		restoreDuration: gauge("restore_duration_seconds", "Time the restore at start took."),
	}
	if reg != nil {
		reg.MustRegister(c.lastSuccess, c.duration, c.size, c.series, c.failures, c.restoreFailures, c.restored, c.restoreDuration)
	}
	return c, nil
}

// Path is the checkpoint file.
func (c *Checkpointer) Path() string { return c.path }

// Save writes a checkpoint.
func (c *Checkpointer) Save() (CheckpointStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := WriteCheckpointFile(c.store, c.path)
	if err != nil {
		c.failures.Inc()
		return st, err
	}
	c.lastSuccess.SetToCurrentTime()
	c.duration.Set(st.Duration.Seconds())
	c.size.Set(float64(st.Bytes))
	c.series.Set(float64(st.Series))
	return st, nil
}

// Restore loads the checkpoint, if there is one (see LoadCheckpointFile).
func (c *Checkpointer) Restore() (CheckpointStats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := LoadCheckpointFile(c.store, c.path)
	c.restoreDuration.Set(st.Duration.Seconds())
	if err != nil {
		c.restoreFailures.Inc()
		return st, err
	}
	c.restored.Set(float64(st.Series))
	return st, nil
}
