package plugintest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Proc is a live process running a plugin executable.
type Proc struct {
	Pid, PPid int
	// Cmdline is the command line, arguments separated by NUL.
	Cmdline string
}

// Plugins lists the live (not zombie) processes whose command line names a
// peco-plugin-* executable, from /proc; ok is false where there is no
// /proc to read (the list is then empty).
func Plugins() (procs []Proc, ok bool) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmd, []byte("peco-plugin-")) {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// stat: pid (comm) state ppid ...; comm may hold spaces.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		var ppid int
		fmt.Sscanf(f[1], "%d", &ppid)
		procs = append(procs, Proc{Pid: pid, PPid: ppid, Cmdline: string(cmd)})
	}
	return procs, true
}

// NoPlugins fails the test when plugin processes that match still run
// after wait (the host may take a moment to reap what it killed; 0 checks
// once, now). It does nothing where there is no /proc.
func NoPlugins(t testing.TB, match func(Proc) bool, wait time.Duration) {
	t.Helper()
	deadline := time.Now().Add(wait)
	var left []Proc
	for {
		procs, ok := Plugins()
		if !ok {
			return
		}
		left = left[:0]
		for _, p := range procs {
			if match(p) {
				left = append(left, p)
			}
		}
		if len(left) == 0 || !time.Now().Before(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, p := range left {
		t.Errorf("plugin process %d still runs: %q", p.Pid, p.Cmdline)
	}
}

// Children matches the plugin processes this (test) process started.
func Children(p Proc) bool { return p.PPid == os.Getpid() }

// Running matches the processes of one plugin executable.
func Running(path string) func(Proc) bool {
	return func(p Proc) bool { return strings.HasPrefix(p.Cmdline, path) }
}
