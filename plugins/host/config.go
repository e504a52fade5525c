package host

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/peco-dev/peco/core"
	pb "github.com/peco-dev/peco/plugins/proto/peco/plugin/v1"
	"github.com/peco-dev/peco/plugins/sdk"
	"github.com/peco-dev/peco/registry"
)

// Prefix starts the `type:` of every plugin component: `type: plugin:focal`.
const Prefix = "plugin:"

// Settings are the host's keys of a plugin component, under `plugin:`.
type Settings struct {
	Path         string        `mapstructure:"path" doc:"the plugin's executable (default: peco-plugin-<name> on $PECO_PLUGIN_PATH, then ./plugins.d); filled in by the host"`
	SHA256       string        `mapstructure:"sha256" doc:"the executable's pinned sha256 (default: its line in ./plugins.lock or $PECO_PLUGIN_LOCK); filled in by the host"`
	Timeout      time.Duration `mapstructure:"timeout" doc:"deadline of each call; a plugin that does not answer in time is killed"`
	StartTimeout time.Duration `mapstructure:"start_timeout" doc:"deadline of the plugin's start-up handshake"`
	Restarts     int           `mapstructure:"restarts" doc:"times a crashed or hung plugin is restarted (and the call repeated) before the run stops"`
	Env          []string      `mapstructure:"env" doc:"host environment variables passed to the plugin besides PATH, HOME, LANG, LC_ALL, TMPDIR, TZ"`
}

// Validate checks the settings.
func (s *Settings) Validate() error {
	if s.Timeout < 0 || s.StartTimeout < 0 || s.Restarts < 0 {
		return fmt.Errorf("timeout, start_timeout and restarts must be >= 0")
	}
	if s.SHA256 != "" && !isSHA256(s.SHA256) {
		return fmt.Errorf("sha256 %q is not 64 hex digits", s.SHA256)
	}
	return nil
}

// DefaultSettings are 2 minutes per call, 30 s to start, no restarts.
func DefaultSettings() Settings {
	return Settings{Timeout: 2 * time.Minute, StartTimeout: 30 * time.Second}
}

func (s Settings) withDefaults() Settings {
	d := DefaultSettings()
	if s.Timeout == 0 {
		s.Timeout = d.Timeout
	}
	if s.StartTimeout == 0 {
		s.StartTimeout = d.StartTimeout
	}
	return s
}

// Params is embedded in the config of every plugin component: the `plugin:`
// settings, the binary the config resolved to, and the values of the
// plugin's own keys (its schema, decoded strictly by the registry).
type Params struct {
	Plugin Settings `mapstructure:"plugin" doc:"how the host runs the plugin: path, sha256, timeout, start_timeout, restarts, env"`

	bin    *Binary
	values map[string]any
	// dial serves the plugin in this process (InProcess) instead of
	// starting bin.
	dial func() (*sdk.Clients, func(), error)
}

// newParams starts the config of a plugin component on bin.
func newParams(bin *Binary) Params {
	s := DefaultSettings()
	s.Path, s.SHA256 = bin.Path, bin.SHA256
	return Params{Plugin: s, bin: bin, values: map[string]any{}}
}

// Binary returns the verified executable.
func (p *Params) Binary() *Binary { return p.bin }

// DynamicKeys implements registry.Dynamic from the plugin's schema.
func (p *Params) DynamicKeys() []registry.DynamicKey {
	var out []registry.DynamicKey
	for _, f := range p.bin.Info.GetSchema() {
		k := registry.DynamicKey{Key: f.Key, Type: fieldGoType(f.Type), Doc: f.Doc}
		if f.DefaultJson != "" {
			k.Default = decodeDefault(f)
		}
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// SetDynamic implements registry.Dynamic.
func (p *Params) SetDynamic(key string, value any) {
	if p.values == nil {
		p.values = map[string]any{}
	}
	p.values[key] = value
}

// DynamicValues implements registry.Dynamic: every schema key, set or
// defaulted (nil for an unset required key).
func (p *Params) DynamicValues() map[string]any {
	out := map[string]any{}
	for _, k := range p.DynamicKeys() {
		out[k.Key] = k.Default
		if v, ok := p.values[k.Key]; ok {
			out[k.Key] = v
		}
	}
	return out
}

// PluginUse implements core.PluginConfig.
func (p *Params) PluginUse() core.PluginUse {
	return core.PluginUse{Name: p.bin.Name, Kind: p.bin.Kind(), Version: p.bin.Info.GetVersion(), Path: p.bin.Path, SHA256: p.bin.SHA256}
}

// NewProcess prepares the plugin's process with this config.
func (p *Params) NewProcess() (*Process, error) {
	if p.dial != nil {
		proc, err := NewProcess(*p.bin, p.Plugin, p.DynamicValues())
		if proc != nil {
			proc.dial = p.dial
		}
		return proc, err
	}
	if p.Plugin.SHA256 != "" && !strings.EqualFold(p.Plugin.SHA256, p.bin.SHA256) || p.Plugin.Path != "" && p.Plugin.Path != p.bin.Path {
		// The config changed path or pin after the lookup verified them:
		// verify again.
		path, err := Locate(p.bin.Name, p.Plugin.Path)
		if err != nil {
			return nil, err
		}
		sum, err := Verify(p.bin.Name, path, p.Plugin.SHA256)
		if err != nil {
			return nil, err
		}
		bin := *p.bin
		bin.Path, bin.SHA256 = path, sum
		p.bin = &bin
	}
	return NewProcess(*p.bin, p.Plugin, p.DynamicValues())
}

// fieldGoType maps a schema field type to the Go type the registry decodes.
func fieldGoType(t pb.FieldType) reflect.Type {
	switch t {
	case sdk.FieldInt:
		return reflect.TypeFor[int]()
	case sdk.FieldFloat:
		return reflect.TypeFor[float64]()
	case sdk.FieldBool:
		return reflect.TypeFor[bool]()
	case sdk.FieldStrings:
		return reflect.TypeFor[[]string]()
	case sdk.FieldInts:
		return reflect.TypeFor[[]int]()
	case sdk.FieldFloats:
		return reflect.TypeFor[[]float64]()
	}
	return reflect.TypeFor[string]()
}

// decodeDefault decodes a schema default into the key's Go type (nil when
// it does not fit: the key is then required).
func decodeDefault(f *pb.Field) any {
	v := reflect.New(fieldGoType(f.Type))
	if err := json.Unmarshal([]byte(f.DefaultJson), v.Interface()); err != nil {
		return nil
	}
	return v.Elem().Interface()
}

// checkSchema refuses a schema the registry cannot decode against.
func checkSchema(info *pb.InfoResponse, reserved []string) error {
	seen := map[string]bool{}
	for _, f := range info.Schema {
		switch {
		case f.Key == "" || f.Key == "type":
			return fmt.Errorf("schema key %q is not allowed", f.Key)
		case seen[f.Key]:
			return fmt.Errorf("schema key %q twice", f.Key)
		case f.Type == pb.FieldType_FIELD_TYPE_UNSPECIFIED || f.Type > pb.FieldType_FIELD_TYPE_FLOAT_LIST:
			return fmt.Errorf("schema key %q has no known type (%v)", f.Key, f.Type)
		case f.DefaultJson != "" && decodeDefault(f) == nil:
			return fmt.Errorf("schema key %q: default %s is not a %s", f.Key, f.DefaultJson, fieldGoType(f.Type))
		}
		for _, r := range reserved {
			if f.Key == r {
				return fmt.Errorf("schema key %q collides with the host's own key %q", f.Key, r)
			}
		}
		seen[f.Key] = true
	}
	return nil
}

// Adapter turns plugins of one kind into components of a registry kind.
type Adapter struct {
	// Kind is the plugin kind adapted.
	Kind pb.Kind
	// NewConfig returns a fresh config (a pointer to a struct embedding
	// Params, built with the given Params, and implementing
	// registry.Builder) holding the host's own keys of the kind.
	NewConfig func(p Params) any
	// Reserved are the host's keys in that config (a plugin's schema may not
	// use them).
	Reserved []string
}

// provider is the registry provider of "plugin:" components.
type provider struct {
	mu       sync.Mutex
	adapters map[registry.Kind]Adapter
	// infos caches Probe answers by sha256 (a binary's Info does not change).
	infos map[string]*pb.InfoResponse
}

var plugins = &provider{adapters: map[registry.Kind]Adapter{}, infos: map[string]*pb.InfoResponse{}}

func init() { registry.RegisterProvider(Prefix, plugins) }

// RegisterAdapter makes plugins of a.Kind usable where components of kind
// are, in init functions. Registering a kind twice panics.
func RegisterAdapter(kind registry.Kind, a Adapter) {
	plugins.mu.Lock()
	defer plugins.mu.Unlock()
	if _, dup := plugins.adapters[kind]; dup {
		panic(fmt.Sprintf("host: adapter for %s registered twice", kind))
	}
	plugins.adapters[kind] = a
}

// Resolve finds, verifies and probes the plugin name for kind; path and
// sha256 override the search path and the lock file.
func Resolve(kind pb.Kind, name, path, pin string, s Settings) (*Binary, error) {
	path, err := Locate(name, path)
	if err != nil {
		return nil, err
	}
	sum, err := Verify(name, path, pin)
	if err != nil {
		return nil, err
	}
	bin := &Binary{Name: name, Path: path, SHA256: sum}
	plugins.mu.Lock()
	info := plugins.infos[sum]
	plugins.mu.Unlock()
	if info == nil {
		if info, err = Probe(*bin, s, pb.Kind_KIND_UNSPECIFIED); err != nil {
			return nil, err
		}
		plugins.mu.Lock()
		plugins.infos[sum] = info
		plugins.mu.Unlock()
	}
	bin.Info = info
	if kind != pb.Kind_KIND_UNSPECIFIED && info.Kind != kind {
		return nil, fmt.Errorf("plugin %q (%s) is a %s plugin, not a %s", name, path, bin.Kind(), sdk.KindName(kind))
	}
	return bin, nil
}

// Lookup implements registry.Provider.
func (pr *provider) Lookup(kind registry.Kind, name string, params map[string]any) (*registry.Entry, error) {
	pr.mu.Lock()
	a, ok := pr.adapters[kind]
	pr.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("plugin %q: a %s cannot be a plugin (plugins provide losses, tasks and tokenizers)", name, kind)
	}
	raw, _ := params["plugin"].(map[string]any)
	path, _ := raw["path"].(string)
	pin, _ := raw["sha256"].(string)
	s := DefaultSettings()
	if d, ok := raw["start_timeout"].(string); ok {
		if t, err := time.ParseDuration(d); err == nil {
			s.StartTimeout = t
		}
	}
	bin, err := Resolve(a.Kind, name, path, pin, s)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(bin.Info, append([]string{"plugin", "type"}, a.Reserved...)); err != nil {
		return nil, fmt.Errorf("plugin %q (%s): %w", name, bin.Path, err)
	}
	doc := fmt.Sprintf("%s (plugin %s %s, %s)", bin.Info.Doc, name, bin.Info.Version, bin.Path)
	return registry.NewEntry(kind, Prefix+name, doc, func() any { return a.NewConfig(newParams(bin)) }), nil
}

// Entries implements registry.Provider: the pinned plugins of the search
// path that adapt to kind (unpinned ones are not started; `peco plugins
// list` shows them).
func (pr *provider) Entries(kind registry.Kind) []*registry.Entry {
	pr.mu.Lock()
	a, ok := pr.adapters[kind]
	pr.mu.Unlock()
	if !ok {
		return nil
	}
	lock, err := ReadLock(LockPath())
	if err != nil {
		return nil
	}
	var out []*registry.Entry
	for _, f := range Discover() {
		if lock[f.Name] == "" {
			continue
		}
		bin, err := Resolve(pb.Kind_KIND_UNSPECIFIED, f.Name, f.Path, "", DefaultSettings())
		if err != nil || bin.Info.Kind != a.Kind {
			continue
		}
		doc := fmt.Sprintf("%s (plugin %s %s, %s)", bin.Info.Doc, f.Name, bin.Info.Version, bin.Path)
		out = append(out, registry.NewEntry(kind, Prefix+f.Name, doc, func() any { return a.NewConfig(newParams(bin)) }))
	}
	return out
}

// FieldTypeName names a schema field type in config words.
func FieldTypeName(t pb.FieldType) string { return fieldGoType(t).String() }
