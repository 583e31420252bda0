package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// Config is the content of berth.toml. The [sandbox], [pool] and [server]
// tables are read; other tables of an OpenHands config.toml ([core], [llm],
// ...) are ignored.
type Config struct {
	Sandbox  Sandbox  `toml:"sandbox"`
	Pool     Pool     `toml:"pool"`     // warm pools of berth serve (pool.go)
	Server   Server   `toml:"server"`   // berth serve (server.go)
	Security Security `toml:"security"` // berth serve's command policy and audit trail (security.go)
	// Ignored lists the OpenHands [sandbox] keys the file set that berth
	// does not use (e.g. "sandbox.keep_runtime_alive"), for a warning.
	Ignored []string `toml:"-"`
}

// Sandbox holds the [sandbox] keys, named as in OpenHands' SandboxConfig.
// Each can be overridden by the environment variable SANDBOX_<KEY>.
type Sandbox struct {
	BaseContainerImage    string            `toml:"base_container_image"`     // default "debian:bookworm-slim"
	RuntimeContainerImage string            `toml:"runtime_container_image"`  // prebuilt image; skips the build
	Volumes               string            `toml:"volumes"`                  // "host:container[:mode],...", mode rw|ro|overlay
	UseHostNetwork        bool              `toml:"use_host_network"`         // network_mode=host
	RuntimeBindingAddress string            `toml:"runtime_binding_address"`  // host IP published ports bind to; default "127.0.0.1"
	VSCodePort            int               `toml:"vscode_port"`              // 0 = none, else 1..65535
	EnableGPU             bool              `toml:"enable_gpu"`               // request GPUs
	CUDAVisibleDevices    string            `toml:"cuda_visible_devices"`     // "" = all, or GPU numbers "0,2"
	DockerRuntimeKwargs   map[string]any    `toml:"docker_runtime_kwargs"`    // resource limits; see Limits
	RuntimeStartupEnvVars map[string]string `toml:"runtime_startup_env_vars"` // container environment
	RuntimeExtraDeps      string            `toml:"runtime_extra_deps"`       // shell snippet run as a build step
	ForceRebuildRuntime   bool              `toml:"force_rebuild_runtime"`    // rebuild even if the image exists
	RuntimeExtraBuildArgs []string          `toml:"runtime_extra_build_args"` // "KEY=VALUE" or "--build-arg=KEY=VALUE"; see BuildArgs
	Timeout               Duration          `toml:"timeout"`                  // readiness timeout; default 120s
	UserID                int               `toml:"user_id"`                  // uid in the sandbox; default 1000, 0 = root

	// Keys of berth's own (OpenHands has no equivalent, or no such feature).
	AdditionalNetworks []string `toml:"additional_networks"` // Docker networks to join (OpenHands' key)
	Network            string   `toml:"network"`             // bridge (default), none, internal or host
	AgentPortRange     string   `toml:"agent_port_range"`    // "" = 30000-39999 (30000-34999 on Windows/WSL2)
	VSCodePortRange    string   `toml:"vscode_port_range"`   // "" = 40000-49999
	AppPortRange1      string   `toml:"app_port_range_1"`    // "" = 50000-54999
	AppPortRange2      string   `toml:"app_port_range_2"`    // "" = 55000-59999
	PublishVSCode      bool     `toml:"publish_vscode"`      // publish a VS Code port (VSCODE_PORT); implied by vscode_port
	PublishAppPorts    int      `toml:"publish_app_ports"`   // publish 0, 1 or 2 app ports (APP_PORT_1, APP_PORT_2)
	ReadOnlyRootfs     bool     `toml:"read_only_rootfs"`    // read-only root; /workspace, /tmp, /home writable
	Tmpfs              []string `toml:"tmpfs"`               // "PATH[:size=64m]" mounts
}

const (
	defaultBaseImage      = "debian:bookworm-slim"
	defaultBindingAddress = "127.0.0.1"
	defaultTimeout        = 120 * time.Second
	defaultUserID         = 1000
)

// Default returns the configuration used when no file sets anything.
func Default() Config {
	return Config{Sandbox: Sandbox{
		BaseContainerImage:    defaultBaseImage,
		RuntimeBindingAddress: defaultBindingAddress,
		Timeout:               Duration{defaultTimeout},
		UserID:                defaultUserID,
	}}
}

// DefaultPath returns <user config dir>/berth/berth.toml, e.g.
// ~/.config/berth/berth.toml on Linux.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("finding the default config file: %w", err)
	}
	return filepath.Join(dir, "berth", "berth.toml"), nil
}

// Load reads the file at path, applies SANDBOX_* overrides found through
// lookupEnv (os.LookupEnv in production; nil for none), and validates.
//
// With path "" it reads DefaultPath; a missing default file (or no user
// config directory at all) gives the defaults. A missing file named
// explicitly is an error. Errors about file values are prefixed with the
// path; errors about environment values name the variable.
func Load(path string, lookupEnv func(string) (string, bool)) (Config, error) {
	source, data, err := readFile(path)
	if err != nil {
		return Config{}, err
	}
	c := Default()
	var fileErrs, envErrs []error
	if data != nil {
		c, fileErrs = decode(data)
	}
	envErrs = c.applyEnv(lookupEnv)
	// Values set from the environment were checked by applyEnv, so what
	// validate finds now comes from the file.
	fileErrs = append(fileErrs, c.validate()...)
	if err := errors.Join(prefixed(source, fileErrs), errors.Join(envErrs...)); err != nil {
		return Config{}, err
	}
	return c, nil
}

// readFile returns the path read and its content; nil content means a
// missing default file.
func readFile(path string) (string, []byte, error) {
	explicit := path != ""
	if !explicit {
		p, err := DefaultPath()
		if err != nil {
			return "", nil, nil
		}
		path = p
	}
	data, err := os.ReadFile(path)
	if err != nil {
		if !explicit && errors.Is(err, fs.ErrNotExist) {
			return path, nil, nil
		}
		return "", nil, fmt.Errorf("reading config: %w", err)
	}
	if data == nil {
		data = []byte{}
	}
	return path, data, nil
}

// Parse reads TOML text into a Config with defaults for the keys it does
// not set, and validates it. It reads no environment. source names the
// text in error messages, e.g. "berth.toml".
func Parse(data []byte, source string) (Config, error) {
	c, errs := decode(data)
	errs = append(errs, c.validate()...)
	if err := prefixed(source, errs); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks every setting and returns every problem, joined with
// errors.Join; each is an *Error naming the key and the bad value. It
// changes nothing.
func (c Config) Validate() error {
	return errors.Join(c.validate()...)
}

func (c Config) validate() []error {
	var errs []error
	for _, f := range fields {
		if f.check != nil {
			errs = append(errs, f.check(c.Sandbox).errs("sandbox."+f.key)...)
		}
	}
	return errs
}
