package host

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"crypto/sha256"

	"github.com/peco-dev/peco/core"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
)

// APIVersions are the plugin protocol versions this host speaks.
var APIVersions = []int32{sdk.APIVersion}

// allowedEnv are the host environment variables a plugin gets (besides
// go-plugin's own handshake variables and the ones its config adds).
var allowedEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ"}

// Binary is a verified plugin executable and what it says of itself.
type Binary struct {
	Name, Path, SHA256 string
	Info               *pb.InfoResponse
}

// Kind is the binary's kind as configs name it.
func (b *Binary) Kind() string { return sdk.KindName(b.Info.GetKind()) }

// Process is a running plugin: its go-plugin client, the settings of its
// calls and what is needed to restart it.
type Process struct {
	bin      Binary
	settings Settings
	config   string
	seed     int64

	mu      sync.Mutex
	client  *plugin.Client
	clients *sdk.Clients
	// dial connects to a plugin served in this process (InProcess) instead
	// of starting an executable; hangup closes that connection.
	dial     func() (*sdk.Clients, func(), error)
	hangup   func()
	log      *logSink
	restarts int
	// state is the plugin's state as last saved or loaded, replayed into a
	// restarted process.
	state []byte
}

// NewProcess prepares (without starting) a process of bin with its config
// section (every schema key set) and settings.
func NewProcess(bin Binary, settings Settings, config map[string]any) (*Process, error) {
	cfg, err := json.Marshal(config)
	if err != nil {
		return nil, fmt.Errorf("plugin %q: encoding its config: %w", bin.Name, err)
	}
	return &Process{bin: bin, settings: settings.withDefaults(), config: string(cfg), log: newLogSink(bin.Name)}, nil
}

// Start starts the process and configures it with seed; its stderr is
// appended to logPath ("" keeps only the last lines, for error messages).
func (p *Process) Start(seed int64, logPath string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seed = seed
	if logPath != "" {
		if err := p.log.open(logPath); err != nil {
			return fmt.Errorf("plugin %q: %w", p.bin.Name, err)
		}
	}
	return p.startLocked()
}

func (p *Process) startLocked() error {
	if p.dial != nil {
		clients, hangup, err := p.dial()
		if err != nil {
			return p.Errorf("connecting", -1, "%v", err)
		}
		p.clients, p.hangup = clients, hangup
	} else {
		client, clients, err := launch(p.bin, p.settings, p.log)
		if err != nil {
			return err
		}
		p.client, p.clients = client, clients
	}
	clients := p.clients
	ctx, cancel := context.WithTimeout(context.Background(), p.settings.Timeout)
	defer cancel()
	_, err := clients.Plugin.Configure(ctx, &pb.ConfigureRequest{ConfigJson: p.config, Seed: p.seed, ApiVersion: sdk.APIVersion})
	if err != nil {
		p.killLocked()
		return p.Errorf("Configure", -1, "%s", p.reason(ctx, err))
	}
	if len(p.state) > 0 {
		if _, err := clients.Loss.Load(ctx, &pb.State{Data: p.state}); err != nil {
			p.killLocked()
			return p.Errorf("Load", -1, "%s", p.reason(ctx, err))
		}
	}
	return nil
}

// Close ends the process.
func (p *Process) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.killLocked()
	return p.log.close()
}

// Exited reports whether no plugin process is running.
func (p *Process) Exited() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clients == nil || (p.client != nil && p.client.Exited())
}

// Pid returns the plugin process's id (0 when none runs).
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.client == nil {
		return 0
	}
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

func (p *Process) killLocked() {
	if p.client != nil {
		p.client.Kill()
	}
	if p.hangup != nil {
		p.hangup()
	}
	p.client, p.clients, p.hangup = nil, nil, nil
}

// Call runs one call of the plugin with the deadline of its settings. A
// plugin that crashes or hangs is killed, and restarted (up to
// plugin.restarts times) with the call repeated; step is the optimizer step
// the call belongs to (-1: none), for the error message.
func (p *Process) Call(ctx context.Context, call string, step int64, fn func(ctx context.Context, c *sdk.Clients) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if p.clients == nil {
			return p.Errorf(call, step, "the plugin is not running")
		}
		cctx, cancel := context.WithTimeout(ctx, p.settings.Timeout)
		err := fn(cctx, p.clients)
		if err == nil {
			cancel()
			return nil
		}
		reason := p.reason(cctx, err)
		cancel()
		if ctx.Err() != nil {
			return p.Errorf(call, step, "%v", ctx.Err())
		}
		if !p.lost(err) {
			return p.Errorf(call, step, "%s", reason)
		}
		p.killLocked()
		if p.restarts >= p.settings.Restarts {
			if p.settings.Restarts > 0 {
				reason += fmt.Sprintf(" (after %d restarts, plugin.restarts)", p.restarts)
			}
			return p.Errorf(call, step, "%s", reason)
		}
		p.restarts++
		short, _, _ := strings.Cut(firstLine(reason), ";")
		p.log.note(fmt.Sprintf("%s at step %d: %s; restarting (%d of %d)", call, step, short, p.restarts, p.settings.Restarts))
		if err := p.startLocked(); err != nil {
			return err
		}
	}
}

// lost reports whether an error means the process is gone or stuck rather
// than a refusal it answered.
func (p *Process) lost(err error) bool {
	switch status.Code(err) {
	case codes.DeadlineExceeded, codes.Unavailable, codes.Canceled:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) || (p.client != nil && p.client.Exited())
}

// reason says in words why a call failed.
func (p *Process) reason(ctx context.Context, err error) string {
	code := status.Code(err)
	if code == codes.DeadlineExceeded || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("did not answer within %s (plugin.timeout); killed", p.settings.Timeout)
	}
	if code == codes.Unavailable || (p.client != nil && p.client.Exited()) {
		// Give the process a moment to be reaped, then report its last words.
		for i := 0; i < 20 && p.client != nil && !p.client.Exited(); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		msg := "crashed (its process exited)"
		if p.client != nil && !p.client.Exited() {
			msg = "lost its connection: " + status.Convert(err).Message()
		}
		if tail := p.log.tail(); tail != "" {
			msg += "; its last stderr lines:\n" + tail
		}
		return msg
	}
	if s, ok := status.FromError(err); ok {
		return fmt.Sprintf("%s (%s)", s.Message(), s.Code())
	}
	return err.Error()
}

// Errorf is an error of the plugin's call at step (-1: none), in the
// host's one format: plugin "name" (kind, path): Call at step N: message.
func (p *Process) Errorf(call string, step int64, format string, args ...any) error {
	where := call
	if step >= 0 {
		where = fmt.Sprintf("%s at step %d", call, step)
	}
	return fmt.Errorf("plugin %q (%s, %s): %s: %s", p.bin.Name, p.bin.Kind(), p.bin.Path, where, fmt.Sprintf(format, args...))
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// launch starts the executable of bin through go-plugin and connects.
func launch(bin Binary, s Settings, log io.Writer) (*plugin.Client, *sdk.Clients, error) {
	sum, err := hex.DecodeString(bin.SHA256)
	if err != nil {
		return nil, nil, fmt.Errorf("plugin %q: bad sha256 %q", bin.Name, bin.SHA256)
	}
	cmd := exec.Command(bin.Path)
	cmd.Env = pluginEnv(s.Env)
	cmd.SysProcAttr = sysProcAttr()
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		AutoMTLS:         true,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		SkipHostEnv:      true,
		Managed:          true,
		StartTimeout:     s.StartTimeout,
		Stderr:           log,
		SyncStderr:       log, // the plugin's os.Stderr, streamed by go-plugin
		SyncStdout:       log,
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "peco", Level: hclog.Error, Output: hostLines{log}}),
		GRPCDialOptions: []grpc.DialOption{grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(sdk.MaxMessageBytes), grpc.MaxCallSendMsgSize(sdk.MaxMessageBytes))},
	})
	fail := func(err error) (*plugin.Client, *sdk.Clients, error) {
		client.Kill()
		return nil, nil, startError(bin, err, log)
	}
	rpc, err := client.Client()
	if err != nil {
		return fail(err)
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fail(err)
	}
	clients, ok := raw.(*sdk.Clients)
	if !ok {
		return fail(fmt.Errorf("dispensed %T", raw))
	}
	return client, clients, nil
}

// startError explains why a plugin did not start.
func startError(bin Binary, err error, log io.Writer) error {
	msg := err.Error()
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		msg = "the executable changed after it was verified (sha256 mismatch); refusing to start it"
	case strings.Contains(strings.ToLower(msg), "incompatible api version"):
		msg = fmt.Sprintf("speaks another plugin protocol version than this peco (%v): %s", APIVersions, msg)
	case strings.Contains(msg, "Unrecognized remote plugin message"), strings.Contains(msg, "plugin exited before we could connect"),
		strings.Contains(msg, "timeout while waiting for plugin to start"):
		msg = "is not a peco plugin (it did not answer the plugin handshake; plugins serve with plugins/sdk.Serve): " + msg
	}
	if ls, ok := log.(*logSink); ok {
		if tail := ls.tail(); tail != "" {
			msg += "; its last stderr lines:\n" + tail
		}
	}
	return fmt.Errorf("plugin %q (%s): starting: %s", bin.Name, bin.Path, msg)
}

// pluginEnv is the allowlisted environment of a plugin.
func pluginEnv(extra []string) []string {
	var env []string
	for _, k := range append(slices.Clone(allowedEnv), extra...) {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// Probe starts the executable of bin (verified), asks for its Info and
// ends it. It checks that the plugin is of kind (when not
// KIND_UNSPECIFIED), answers to its name and speaks one of APIVersions.
func Probe(bin Binary, s Settings, kind pb.Kind) (*pb.InfoResponse, error) {
	s = s.withDefaults()
	log := newLogSink(bin.Name)
	client, clients, err := launch(bin, s, log)
	if err != nil {
		return nil, err
	}
	defer client.Kill()
	ctx, cancel := context.WithTimeout(context.Background(), s.Timeout)
	defer cancel()
	info, err := clients.Plugin.Info(ctx, &pb.InfoRequest{HostApiVersions: APIVersions})
	if err != nil {
		p := &Process{bin: bin, settings: s, client: client, log: log}
		return nil, fmt.Errorf("plugin %q (%s): Info: %s", bin.Name, bin.Path, p.reason(ctx, err))
	}
	if !slices.ContainsFunc(info.ApiVersions, func(v int32) bool { return slices.Contains(APIVersions, v) }) {
		return nil, fmt.Errorf("plugin %q (%s): speaks plugin API versions %v, this peco speaks %v", bin.Name, bin.Path, info.ApiVersions, APIVersions)
	}
	if info.Name != bin.Name {
		return nil, fmt.Errorf("plugin %q (%s): the executable says it is plugin %q", bin.Name, bin.Path, info.Name)
	}
	if kind != pb.Kind_KIND_UNSPECIFIED && info.Kind != kind {
		return nil, fmt.Errorf("plugin %q (%s) is a %s plugin, not a %s", bin.Name, bin.Path, sdk.KindName(info.Kind), sdk.KindName(kind))
	}
	return info, nil
}

// logSink receives a plugin's stderr: lines go, prefixed with the plugin's
// name, to the run's plugins.log when one is open, and the last lines are
// kept for error messages.
type logSink struct {
	name    string
	mu      sync.Mutex
	file    *os.File
	partial []byte
	last    []string
}

func newLogSink(name string) *logSink { return &logSink{name: name} }

const tailLines = 20

func (l *logSink) open(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		return nil
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	l.file = f
	return nil
}

func (l *logSink) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// Write implements io.Writer.
func (l *logSink) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lineLocked(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	return len(b), nil
}

func (l *logSink) lineLocked(line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	l.last = append(l.last, line)
	if len(l.last) > tailLines {
		l.last = l.last[len(l.last)-tailLines:]
	}
	if l.file != nil {
		fmt.Fprintf(l.file, "%s [%s] %s\n", time.Now().UTC().Format(time.RFC3339), l.name, line)
	}
}

// note logs a line of the host's own about the plugin.
func (l *logSink) note(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.file != nil {
		fmt.Fprintf(l.file, "%s [%s] host: %s\n", time.Now().UTC().Format(time.RFC3339), l.name, line)
	}
}

func (l *logSink) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := slices.Clone(l.last)
	if len(l.partial) > 0 {
		lines = append(lines, string(l.partial))
	}
	for i := range lines {
		lines[i] = "  | " + lines[i]
	}
	return strings.Join(lines, "\n")
}

// SaveState asks the plugin for its state (kept for restarts).
func (p *Process) SaveState(step int64) ([]byte, error) {
	var data []byte
	err := p.Call(context.Background(), "Save", step, func(ctx context.Context, c *sdk.Clients) error {
		st, err := c.Loss.Save(ctx, &pb.SaveRequest{Step: step})
		if status.Code(err) == codes.Unimplemented {
			return nil
		}
		if err != nil {
			return err
		}
		data = st.Data
		return nil
	})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.state = data
	p.mu.Unlock()
	return data, nil
}

// LoadState hands the plugin a state from a checkpoint.
func (p *Process) LoadState(data []byte) error {
	err := p.Call(context.Background(), "Load", -1, func(ctx context.Context, c *sdk.Clients) error {
		_, err := c.Loss.Load(ctx, &pb.State{Data: data})
		if status.Code(err) == codes.Unimplemented && len(data) == 0 {
			return nil
		}
		return err
	})
	if err == nil {
		p.mu.Lock()
		p.state = data
		p.mu.Unlock()
	}
	return err
}

var _ = core.PluginLogFile

// hostLines passes go-plugin's own messages about a plugin (e.g. its exit
// status) to the plugin's log, without go-plugin's copies of the plugin's
// stderr lines, which the log already has.
type hostLines struct{ w io.Writer }

func (h hostLines) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("peco."+ExecPrefix)) {
		return len(b), nil
	}
	return h.w.Write(b)
}
