package run

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/peco-dev/peco/core"
)

// LockHolder is the content of a run directory's lock file: who writes the
// run.
type LockHolder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Start   time.Time `json:"start"`
	Command []string  `json:"command,omitempty"`
}

// Lock is a held run-directory lock (core.LockFile). It is an advisory
// lock on the file (flock on Unix), so the kernel drops it when the
// holder dies, even by kill -9: a lock file left by a dead process is stale
// and the next writer takes it over.
type Lock struct {
	// Path is the lock file.
	Path string
	// Stale describes the dead holder whose lock this one took over ("" if
	// the lock was free).
	Stale string

	f *os.File
}

// ErrLocked is wrapped by the error of AcquireLock when another live
// process holds the run directory.
var ErrLocked = errors.New("run directory in use")

// AcquireLock takes the lock of run directory dir, writing this process's
// pid, host, start time and command into it. A directory locked by a live
// process is refused, naming that process.
func AcquireLock(dir string, command []string) (*Lock, error) {
	path := filepath.Join(dir, core.LockFile)
	for attempt := 0; ; attempt++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("locking run directory %s: %w", dir, err)
		}
		prev, _ := readHolder(f)
		held, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking run directory %s: %s: %w", dir, path, err)
		}
		if !held {
			f.Close()
			who := "another process"
			if prev != nil {
				who = fmt.Sprintf("pid %d on %s (started %s, %v)", prev.PID, prev.Host, prev.Start.Local().Format(time.DateTime), prev.Command)
			}
			return nil, fmt.Errorf("%w: %s is being written by %s (lock file %s); wait for it to end or stop it, or use another --out",
				ErrLocked, dir, who, path)
		}
		// The file may have been removed (its holder finished) between the
		// open and the lock: then this lock guards nothing; start again.
		if same, err := samePath(f, path); err != nil || !same {
			f.Close()
			if attempt < 10 {
				continue
			}
			return nil, fmt.Errorf("locking run directory %s: %s keeps being replaced", dir, path)
		}
		l := &Lock{Path: path, f: f}
		if prev != nil {
			l.Stale = fmt.Sprintf("took over the stale lock of pid %d on %s (started %s), which no longer runs",
				prev.PID, prev.Host, prev.Start.Local().Format(time.DateTime))
		}
		host, _ := os.Hostname()
		b, err := json.Marshal(LockHolder{PID: os.Getpid(), Host: host, Start: time.Now().UTC(), Command: command})
		if err == nil {
			err = f.Truncate(0)
		}
		if err == nil {
			_, err = f.WriteAt(append(b, '\n'), 0)
		}
		if err != nil {
			l.Release()
			return nil, fmt.Errorf("writing lock file %s: %w", path, err)
		}
		return l, nil
	}
}

// Release removes the lock file and drops the lock. It may be called more
// than once.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.Path) // while still held, so no other writer loses it
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("releasing lock %s: %w", l.Path, err)
	}
	return nil
}

// ReadLock returns the holder recorded in dir's lock file, or nil when
// there is none.
func ReadLock(dir string) (*LockHolder, error) {
	f, err := os.Open(filepath.Join(dir, core.LockFile))
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readHolder(f)
}

func readHolder(f *os.File) (*LockHolder, error) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return nil, err
	}
	b := make([]byte, min(fi.Size(), 1<<16))
	n, err := f.ReadAt(b, 0)
	if n == 0 {
		return nil, err
	}
	var h LockHolder
	if err := json.Unmarshal(b[:n], &h); err != nil {
		return nil, fmt.Errorf("lock file %s: %w", f.Name(), err)
	}
	return &h, nil
}

// samePath reports whether the open file f is still the file at path.
func samePath(f *os.File, path string) (bool, error) {
	a, err := f.Stat()
	if err != nil {
		return false, err
	}
	b, err := os.Stat(path)
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(a, b), nil
}
