//go:build !unix

package run

import "os"

// tryLock without flock: the holder recorded in the lock file keeps it
// while a process with its pid exists on this host (os.FindProcess finds
// only live processes on Windows); a lock of another host is never taken
// over; an empty file is free.
func tryLock(f *os.File) (bool, error) {
	h, err := readHolder(f)
	if err != nil {
		return false, err
	}
	if h == nil {
		return true, nil
	}
	if host, _ := os.Hostname(); h.Host != host {
		return false, nil
	}
	p, err := os.FindProcess(h.PID)
	if err != nil {
		return true, nil
	}
	p.Release()
	return false, nil
}
