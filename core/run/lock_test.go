package run

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/peco-dev/peco/core"
)

// lockHolderEnv makes the test binary a process that creates a run in the
// directory it names, says "locked" and waits to be killed
// (TestLockHolderProcess).
const lockHolderEnv = "PECO_TEST_LOCK_HOLDER"

// TestLockHolderProcess is the child of TestLockKilledHolder; it does
// nothing in a normal test run.
func TestLockHolderProcess(t *testing.T) {
	dir := os.Getenv(lockHolderEnv)
	if dir == "" {
		t.Skip("only run as the child of TestLockKilledHolder")
	}
	if _, err := CreateRunDir(dir, []byte("seed: 0\n"), Meta{Command: []string{"holder"}}); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(1)
}

// TestLockRefusesSecondWriter: a run directory being written is refused to
// a second run and to a resume, naming the holder's pid; when the first run
// ends its lock file is gone and the resume is accepted.
func TestLockRefusesSecondWriter(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	cfg := []byte("seed: 0\n")
	first, err := CreateRunDir(dir, cfg, Meta{Command: []string{"peco", "run", "first"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ReadLock(dir)
	if err != nil || h == nil || h.PID != os.Getpid() || h.Host == "" || h.Start.IsZero() || h.Command[2] != "first" {
		t.Fatalf("lock file holds %+v, %v", h, err)
	}
	want := fmt.Sprintf("pid %d", os.Getpid())
	if _, err := CreateRunDir(dir, cfg, Meta{}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) {
		t.Errorf("second run: %v, want it refused naming %s", err, want)
	}
	if _, err := ResumeRunDir(dir, cfg, Meta{}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), want) ||
		!strings.Contains(err.Error(), core.LockFile) {
		t.Errorf("resume while running: %v, want it refused naming %s and the lock file", err, want)
	}
	if m := readMeta(t, dir); m.Status != StatusRunning || len(m.Resumes) != 0 {
		t.Errorf("the refused writers changed meta.json: %+v", m)
	}
	if err := first.Finish(nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, core.LockFile)); !os.IsNotExist(err) {
		t.Errorf("lock file left after Finish: %v", err)
	}
	again, err := ResumeRunDir(dir, cfg, Meta{})
	if err != nil {
		t.Fatalf("resume after the run ended: %v", err)
	}
	if again.Lock.Stale != "" {
		t.Errorf("a released lock reported stale: %s", again.Lock.Stale)
	}
	again.Finish(nil)
}

// TestLockStaleFile: a lock file naming a process that no longer runs (and
// holding no lock) is taken over, saying so.
func TestLockStaleFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r, err := CreateRunDir(dir, []byte("seed: 0\n"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(nil)
	// A process that has exited: its pid is free.
	child := exec.Command(os.Args[0], "-test.run=^$")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := child.Process.Pid
	b, _ := json.Marshal(LockHolder{PID: dead, Host: "somewhere", Start: time.Now()})
	if err := os.WriteFile(filepath.Join(dir, core.LockFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err = ResumeRunDir(dir, []byte("seed: 0\n"), Meta{})
	if err != nil {
		t.Fatalf("resume over a stale lock: %v", err)
	}
	defer r.Finish(nil)
	if want := fmt.Sprintf("stale lock of pid %d", dead); !strings.Contains(r.Lock.Stale, want) {
		t.Errorf("takeover note %q lacks %q", r.Lock.Stale, want)
	}
	if h, _ := ReadLock(dir); h == nil || h.PID != os.Getpid() {
		t.Errorf("lock file after the takeover: %+v", h)
	}
}

// TestLockKilledHolder: a child process writing the run holds it (a resume
// is refused naming the child's pid); once the child is killed with
// SIGKILL, leaving its lock file, the resume takes the lock over.
func TestLockKilledHolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	child := exec.Command(os.Args[0], "-test.run=^TestLockHolderProcess$")
	child.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("child: %q, %v", line, err)
	}
	pid := fmt.Sprintf("pid %d", child.Process.Pid)
	if _, err := ResumeRunDir(dir, []byte("seed: 0\n"), Meta{}); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), pid) {
		t.Fatalf("resume while the child runs: %v, want it refused naming %s", err, pid)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if _, err := os.Stat(filepath.Join(dir, core.LockFile)); err != nil {
		t.Fatalf("the killed child left no lock file: %v", err)
	}
	r, err := ResumeRunDir(dir, []byte("seed: 0\n"), Meta{})
	if err != nil {
		t.Fatalf("resume after the child was killed: %v", err)
	}
	defer r.Finish(nil)
	if !strings.Contains(r.Lock.Stale, "stale lock of "+pid) {
		t.Errorf("takeover note %q lacks %q", r.Lock.Stale, pid)
	}
}

// TestResumeRemovesTempFiles: the temporary files a killed writer left
// (a half-written checkpoint, meta.json) are removed by the resume, which
// lists them.
func TestResumeRemovesTempFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	r, err := CreateRunDir(dir, []byte("seed: 0\n"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	r.Finish(errors.New("killed"))
	tmps := []string{filepath.Join(dir, core.CheckpointsDir, ".step-000000003.ckpt.tmp-123"), filepath.Join(dir, ".meta.json.tmp-9")}
	for _, p := range tmps {
		if err := os.WriteFile(p, []byte("half"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err = ResumeRunDir(dir, []byte("seed: 0\n"), Meta{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Finish(nil)
	if len(r.Removed) != 2 {
		t.Errorf("removed %v, want %v", r.Removed, tmps)
	}
	for _, p := range tmps {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s left: %v", p, err)
		}
	}
}
