// Package host runs peco's out-of-process plugins: it finds a plugin's
// executable, verifies its sha256 against the pin in the config or in
// plugins.lock, starts it through hashicorp/go-plugin (gRPC, AutoMTLS, an
// allowlisted environment, killed with its host), decodes its config section
// against its schema, and adapts it to the component interfaces of core
// (loss, tokenizer; tasks/plugintask adapts task plugins). Every failure of
// a plugin — a crash, a hang past its deadline, NaN, a wrong shape, a
// protocol it does not share — is one error naming the plugin, the call and
// the step.
//
// A config names a plugin as `type: plugin:<name>` wherever a component of
// its kind is allowed; the plugin's executable is peco-plugin-<name>.
package host

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/go-plugin"
)

// Environment and file names the host reads.
const (
	// PathEnv lists directories (separated by ':') searched for plugins
	// before DefaultDir.
	PathEnv = "PECO_PLUGIN_PATH"
	// LockEnv names a lock file to read instead of LockFile.
	LockEnv = "PECO_PLUGIN_LOCK"
	// DefaultDir is searched after $PECO_PLUGIN_PATH, relative to the
	// working directory.
	DefaultDir = "plugins.d"
	// LockFile pins plugins' sha256, one "<sha256>  <name>" line each (the
	// output of `peco plugins hash`), in the working directory.
	LockFile = "plugins.lock"
	// ExecPrefix starts every plugin executable's name.
	ExecPrefix = "peco-plugin-"
)

// SearchDirs returns the directories searched for plugins, in order.
func SearchDirs() []string {
	var dirs []string
	for _, d := range filepath.SplitList(os.Getenv(PathEnv)) {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return append(dirs, DefaultDir)
}

// Found is a plugin executable found on the search path.
type Found struct {
	Name, Path string
}

// Discover lists the plugin executables of the search path (the first of
// each name wins), sorted by name.
func Discover() []Found {
	seen := map[string]bool{}
	var out []Found
	for _, dir := range SearchDirs() {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			name, ok := strings.CutPrefix(e.Name(), ExecPrefix)
			if !ok || name == "" || seen[name] || e.IsDir() {
				continue
			}
			p := filepath.Join(dir, e.Name())
			if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
				continue
			}
			seen[name] = true
			out = append(out, Found{Name: name, Path: p})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Locate returns the absolute path of the executable of plugin name: path
// when given, else the first peco-plugin-<name> on the search path.
func Locate(name, path string) (string, error) {
	if path == "" {
		for _, dir := range SearchDirs() {
			p := filepath.Join(dir, ExecPrefix+name)
			if _, err := os.Stat(p); err == nil {
				path = p
				break
			}
		}
		if path == "" {
			var names []string
			for _, f := range Discover() {
				names = append(names, f.Name)
			}
			found := "none"
			if len(names) > 0 {
				found = strings.Join(names, ", ")
			}
			return "", fmt.Errorf("no plugin %q: looked for %s%s in %s (set %s, or give plugin.path); plugins found: %s",
				name, ExecPrefix, name, strings.Join(SearchDirs(), ", "), PathEnv, found)
		}
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("plugin %q: %w", name, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return "", fmt.Errorf("plugin %q: %w", name, err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("plugin %q: %s is not an executable file", name, abs)
	}
	return abs, nil
}

// Hash returns the hex sha256 of a file.
func Hash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// LockPath is the lock file the host reads: $PECO_PLUGIN_LOCK or
// ./plugins.lock.
func LockPath() string {
	if p := os.Getenv(LockEnv); p != "" {
		return p
	}
	return LockFile
}

// ReadLock reads a lock file: name -> sha256. A missing file is an empty
// lock.
func ReadLock(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 || !isSHA256(fields[0]) {
			return nil, fmt.Errorf("%s:%d: want \"<sha256>  <plugin name>\", got %q", path, n, line)
		}
		name := strings.TrimPrefix(filepath.Base(fields[1]), ExecPrefix)
		if prev, dup := out[name]; dup && prev != fields[0] {
			return nil, fmt.Errorf("%s:%d: plugin %q pinned twice with different hashes", path, n, name)
		}
		out[name] = strings.ToLower(fields[0])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return out, nil
}

func isSHA256(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// Verify checks the executable at path against its pin: pinned (from the
// config) when set, else its line in the lock file. It returns the file's
// sha256.
func Verify(name, path, pinned string) (string, error) {
	actual, err := Hash(path)
	if err != nil {
		return "", fmt.Errorf("plugin %q: %w", name, err)
	}
	source := "its config (plugin.sha256)"
	if pinned == "" {
		lock, err := ReadLock(LockPath())
		if err != nil {
			return "", fmt.Errorf("plugin %q: %w", name, err)
		}
		pinned, source = lock[name], LockPath()
	}
	if pinned == "" {
		return "", fmt.Errorf("plugin %q (%s) is not pinned: add `%s  %s` to %s (`peco plugins hash %s >> %s`) or set plugin.sha256 in its config",
			name, path, actual, name, LockPath(), path, LockPath())
	}
	if !isSHA256(pinned) {
		return "", fmt.Errorf("plugin %q: sha256 %q in %s is not 64 hex digits", name, pinned, source)
	}
	if !strings.EqualFold(pinned, actual) {
		return "", fmt.Errorf("plugin %q (%s) fails its checksum: the file's sha256 is %s, %s pins %s; refusing to start it",
			name, path, actual, source, strings.ToLower(pinned))
	}
	return actual, nil
}

// Cleanup ends every plugin process this host started and has not ended
// yet; the peco command calls it before it exits.
func Cleanup() { plugin.CleanupClients() }

// NameOf returns the plugin name of an executable's path
// (peco-plugin-<name>).
func NameOf(path string) (string, error) {
	name, ok := strings.CutPrefix(filepath.Base(path), ExecPrefix)
	if !ok || name == "" {
		return "", fmt.Errorf("%s: a plugin executable is named %s<name>", path, ExecPrefix)
	}
	return name, nil
}
