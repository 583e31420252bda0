package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// fakeEnv returns a lookup function over a fixed map.
func fakeEnv(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}
}

// wantErr fails unless err is non-nil and its message holds every want.
func wantErr(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	s := c.Sandbox
	if s.BaseContainerImage != "debian:bookworm-slim" || s.RuntimeContainerImage != "" ||
		s.RuntimeBindingAddress != "127.0.0.1" || s.Timeout.Duration != 120*time.Second ||
		s.UserID != 1000 || s.VSCodePort != 0 || s.Volumes != "" || s.UseHostNetwork ||
		s.EnableGPU || s.ForceRebuildRuntime {
		t.Errorf("unexpected defaults: %+v", s)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}
	if l, err := s.Limits(); err != nil || !reflect.DeepEqual(l, Limits{}) {
		t.Errorf("Limits() = %+v, %v; want zero", l, err)
	}
	if a, err := s.BuildArgs(); err != nil || len(a) != 0 {
		t.Errorf("BuildArgs() = %v, %v; want empty", a, err)
	}
	if e := s.Env(); len(e) != 0 {
		t.Errorf("Env() = %v; want empty", e)
	}
	empty, err := Parse(nil, "empty.toml")
	if err != nil || !reflect.DeepEqual(empty, c) {
		t.Errorf("Parse(empty) = %+v, %v; want defaults", empty, err)
	}
}

const fullExample = `
[sandbox]
base_container_image = "python:3.12-slim"
runtime_container_image = "ghcr.io/acme/runtime:1.2"
volumes = "/home/me/src:/workspace,/data:/data:ro,cache:/cache,/repo:/repo:overlay"
use_host_network = true
runtime_binding_address = "0.0.0.0"
vscode_port = 41234
enable_gpu = true
cuda_visible_devices = "0,2"
runtime_extra_deps = "apt-get install -y jq"
force_rebuild_runtime = true
runtime_extra_build_args = ["HTTP_PROXY=http://proxy:3128", "--build-arg=A=1", "--build-arg B=2=3"]
timeout = "2m30s"
user_id = 0

[sandbox.runtime_startup_env_vars]
TZ = "UTC"
LANG = "C.UTF-8"

[sandbox.docker_runtime_kwargs]
mem_limit = "4G"
memswap_limit = -1
shm_size = "512m"
mem_swappiness = 10
oom_kill_disable = false
cpu_period = 100000
cpu_quota = 200000
cpuset_cpus = "0-1,3"
pids_limit = 2048
runtime = "runsc"
privileged = false

[[sandbox.docker_runtime_kwargs.ulimits]]
name = "nofile"
soft = 1024
hard = 4096

[[sandbox.docker_runtime_kwargs.ulimits]]
name = "core"
soft = 0
hard = -1
`

func TestParseFullExample(t *testing.T) {
	c, err := Parse([]byte(fullExample), "full.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sandbox
	want := Sandbox{
		BaseContainerImage:    "python:3.12-slim",
		RuntimeContainerImage: "ghcr.io/acme/runtime:1.2",
		Volumes:               "/home/me/src:/workspace,/data:/data:ro,cache:/cache,/repo:/repo:overlay",
		UseHostNetwork:        true,
		RuntimeBindingAddress: "0.0.0.0",
		VSCodePort:            41234,
		EnableGPU:             true,
		CUDAVisibleDevices:    "0,2",
		DockerRuntimeKwargs:   s.DockerRuntimeKwargs, // checked through Limits below
		RuntimeStartupEnvVars: map[string]string{"TZ": "UTC", "LANG": "C.UTF-8"},
		RuntimeExtraDeps:      "apt-get install -y jq",
		ForceRebuildRuntime:   true,
		RuntimeExtraBuildArgs: []string{"HTTP_PROXY=http://proxy:3128", "--build-arg=A=1", "--build-arg B=2=3"},
		Timeout:               Duration{150 * time.Second},
		UserID:                0,
	}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got  %+v\nwant %+v", s, want)
	}
	l, err := s.Limits()
	if err != nil {
		t.Fatal(err)
	}
	swappiness, oom := int64(10), false
	wantL := Limits{
		Memory: 4 << 30, MemorySwap: -1, ShmSize: 512 << 20, CPUPeriod: 100000, CPUQuota: 200000,
		PidsLimit: 2048, MemorySwappiness: &swappiness, OOMKillDisable: &oom, CpusetCpus: "0-1,3",
		Runtime: "runsc", Ulimits: []Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}, {Name: "core", Soft: 0, Hard: -1}},
	}
	if !reflect.DeepEqual(l, wantL) {
		t.Errorf("Limits() = %+v\nwant %+v", l, wantL)
	}
	args, err := s.BuildArgs()
	if err != nil {
		t.Fatal(err)
	}
	if wantA := map[string]string{"HTTP_PROXY": "http://proxy:3128", "A": "1", "B": "2=3"}; !reflect.DeepEqual(args, wantA) {
		t.Errorf("BuildArgs() = %v, want %v", args, wantA)
	}
	if got, wantE := s.Env(), []string{"LANG=C.UTF-8", "TZ=UTC"}; !reflect.DeepEqual(got, wantE) {
		t.Errorf("Env() = %v, want %v", got, wantE)
	}
}

// An OpenHands config.toml: only [sandbox] is read, with OpenHands' names.
const openHandsExample = `
[core]
workspace_base = "./workspace"
runtime = "docker"
max_iterations = 100
debug = false

[llm]
model = "anthropic/claude-sonnet-4"
api_key = "sk-..."
temperature = 0.0

[llm.draft_editor]
model = "gpt-4o"

[agent]
enable_browsing = true
enable_jupyter = false

[agent.CodeActAgent]
memory_enabled = true

[security]
confirmation_mode = false

[condenser]
type = "noop"

[sandbox]
base_container_image = "nikolaik/python-nodejs:python3.12-nodejs22"
timeout = 120
user_id = 1000
use_host_network = false
runtime_binding_address = "0.0.0.0"
volumes = "/tmp/ws:/workspace:rw"
runtime_extra_deps = "pip install numpy"
docker_runtime_kwargs = { cpu_period = 100000, cpu_quota = 100000, mem_limit = "4G" }
runtime_startup_env_vars = { RUNTIME_MAX_MEMORY_GB = "3" }
`

func TestParseOpenHandsConfig(t *testing.T) {
	c, err := Parse([]byte(openHandsExample), "config.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sandbox
	if s.BaseContainerImage != "nikolaik/python-nodejs:python3.12-nodejs22" || s.Timeout.Duration != 120*time.Second ||
		s.RuntimeBindingAddress != "0.0.0.0" || s.Volumes != "/tmp/ws:/workspace:rw" ||
		s.RuntimeStartupEnvVars["RUNTIME_MAX_MEMORY_GB"] != "3" {
		t.Errorf("unexpected sandbox: %+v", s)
	}
	l, err := s.Limits()
	if err != nil || l.Memory != 4<<30 || l.CPUPeriod != 100000 || l.CPUQuota != 100000 {
		t.Errorf("Limits() = %+v, %v", l, err)
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{
		`90`: 90 * time.Second, `"90"`: 90 * time.Second, `"90s"`: 90 * time.Second,
		`"2m"`: 2 * time.Minute, `1.5`: 1500 * time.Millisecond, `"1h2m3s"`: time.Hour + 2*time.Minute + 3*time.Second,
	} {
		c, err := Parse([]byte("[sandbox]\ntimeout = "+in), "t.toml")
		if err != nil || c.Sandbox.Timeout.Duration != want {
			t.Errorf("timeout = %s: got %v, %v; want %v", in, c.Sandbox.Timeout, err, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		toml string
		want []string
	}{
		{"unknown key with suggestion", `sandbox.base_image = "x"`,
			[]string{`b.toml: unknown key "sandbox.base_image" (did you mean "base_container_image"?)`}},
		{"unknown key typo", `sandbox.timeot = 3`, []string{`unknown key "sandbox.timeot" (did you mean "timeout"?)`}},
		{"unknown key no suggestion", `sandbox.zzz = 3`, []string{`b.toml: unknown key "sandbox.zzz"`}},
		{"unknown subtable", "[sandbox.extra]\na = 1", []string{`unknown key "sandbox.extra"`}},
		{"sandbox not a table", `sandbox = 3`, []string{"sandbox: must be a table", "got 3"}},
		{"syntax", "[sandbox\n", []string{"b.toml: parsing TOML"}},
		{"string type", `sandbox.base_container_image = 3`, []string{"sandbox.base_container_image: must be a string, got 3"}},
		{"bool type", `sandbox.use_host_network = "yes"`, []string{`sandbox.use_host_network: must be true or false, got "yes"`}},
		{"int type", `sandbox.user_id = "root"`, []string{`sandbox.user_id: must be an integer, got "root"`}},
		{"int float", `sandbox.vscode_port = 80.5`, []string{`sandbox.vscode_port: must be an integer, got 80.5`}},
		{"duration type", `sandbox.timeout = true`, []string{"sandbox.timeout: must be seconds", "got true"}},
		{"duration text", `sandbox.timeout = "soon"`, []string{`sandbox.timeout: must be seconds`, `got "soon"`}},
		{"map type", `sandbox.runtime_startup_env_vars = "A=1"`, []string{`sandbox.runtime_startup_env_vars: must be a table of strings, got "A=1"`}},
		{"map value type", `sandbox.runtime_startup_env_vars = { A = 1 }`, []string{"sandbox.runtime_startup_env_vars.A: must be a string, got 1"}},
		{"kwargs type", `sandbox.docker_runtime_kwargs = "mem_limit=4g"`, []string{`sandbox.docker_runtime_kwargs: must be a table`}},
		{"list type", `sandbox.runtime_extra_build_args = "A=1"`, []string{`sandbox.runtime_extra_build_args: must be a list of strings, got "A=1"`}},
		{"list item type", `sandbox.runtime_extra_build_args = ["A=1", 2]`, []string{`sandbox.runtime_extra_build_args.[1]: must be a string, got 2`}},
		{"bad image", `sandbox.base_container_image = "Debian:Latest"`, []string{`sandbox.base_container_image: must be an image reference`, `got "Debian:Latest"`}},
		{"empty image", `sandbox.base_container_image = ""`, []string{`sandbox.base_container_image: must name an image unless runtime_container_image is set`}},
		{"bad runtime image", `sandbox.runtime_container_image = "a b"`, []string{`sandbox.runtime_container_image: must be an image reference`, `got "a b"`}},
		{"bad address", `sandbox.runtime_binding_address = "localhost"`, []string{`sandbox.runtime_binding_address: must be an IP address`, `got "localhost"`}},
		{"address zone", `sandbox.runtime_binding_address = "fe80::1%eth0"`, []string{`sandbox.runtime_binding_address`, `fe80::1%eth0`}},
		{"port high", `sandbox.vscode_port = 70000`, []string{"sandbox.vscode_port: must be 0 (none) or a port 1..65535, got 70000"}},
		{"port negative", `sandbox.vscode_port = -1`, []string{"sandbox.vscode_port", "got -1"}},
		{"cuda", `sandbox.cuda_visible_devices = "0, 1"`, []string{`sandbox.cuda_visible_devices: must be "" (all GPUs)`, `got "0, 1"`}},
		{"cuda dup", `sandbox.cuda_visible_devices = "1,1"`, []string{`sandbox.cuda_visible_devices`, `got "1,1"`}},
		{"cuda negative", `sandbox.cuda_visible_devices = "-1"`, []string{`sandbox.cuda_visible_devices`, `got "-1"`}},
		{"volume", `sandbox.volumes = "/a:relative"`, []string{`sandbox.volumes: volume item 1 "/a:relative": container path "relative" is not absolute`}},
		{"timeout zero", `sandbox.timeout = 0`, []string{"sandbox.timeout: must be positive", "got 0s"}},
		{"timeout negative", `sandbox.timeout = "-5s"`, []string{"sandbox.timeout: must be positive", "got -5s"}},
		{"user negative", `sandbox.user_id = -1`, []string{"sandbox.user_id: must be a uid 0..2147483647 (0 = root), got -1"}},
		{"user huge", `sandbox.user_id = 2147483648`, []string{"sandbox.user_id", "got 2147483648"}},
		{"env name", `sandbox.runtime_startup_env_vars = { "A=B" = "x" }`, []string{`sandbox.runtime_startup_env_vars: variable names`, `got "A=B"`}},
		{"deps NUL", `sandbox.runtime_extra_deps = "a\u0000b"`, []string{`sandbox.runtime_extra_deps: must not contain a NUL byte`}},
		{"build arg", `sandbox.runtime_extra_build_args = ["--network=host"]`, []string{`sandbox.runtime_extra_build_args.[0]: only build arguments are supported`, `got "--network=host"`}},
		{"kwarg unknown", `sandbox.docker_runtime_kwargs = { cap_add = ["NET_ADMIN"] }`,
			[]string{`unknown key "sandbox.docker_runtime_kwargs.cap_add" (not supported by berth; supported: cpu_period, cpu_quota`}},
		{"kwarg typo", `sandbox.docker_runtime_kwargs = { memory_limit = "1g" }`,
			[]string{`unknown key "sandbox.docker_runtime_kwargs.memory_limit" (did you mean "mem_limit"?; supported:`}},
		{"kwarg managed", `sandbox.docker_runtime_kwargs = { environment = {} }`,
			[]string{`"sandbox.docker_runtime_kwargs.environment" (set by berth; use sandbox.runtime_startup_env_vars`}},
		{"privileged", `sandbox.docker_runtime_kwargs = { privileged = true }`,
			[]string{"sandbox.docker_runtime_kwargs.privileged: berth never runs privileged sandboxes", "got true"}},
		{"kwarg size", `sandbox.docker_runtime_kwargs = { mem_limit = "4Q" }`,
			[]string{`sandbox.docker_runtime_kwargs.mem_limit: must be a size`, `got "4Q"`}},
		{"every problem reported", "[sandbox]\nvscode_port = 0x7fffffff\nuser_id = -2\ntimeout = -1\nzz = 1\n",
			[]string{"sandbox.vscode_port", "sandbox.user_id", "sandbox.timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.toml), "b.toml")
			wantErr(t, err, tt.want...)
			if !reflect.DeepEqual(c, Config{}) {
				t.Errorf("on error Parse returned %+v, want the zero Config", c)
			}
			var ce *Error
			if !errors.As(err, &ce) && !strings.Contains(tt.name, "syntax") {
				t.Errorf("error %v holds no *Error", err)
			}
		})
	}
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Default()
	c.Sandbox.VSCodePort = 99999
	c.Sandbox.UserID = -1
	c.Sandbox.Volumes = "x"
	before := c
	err := c.Validate()
	wantErr(t, err, "sandbox.vscode_port", "99999", "sandbox.user_id", "-1", `sandbox.volumes: volume item 1 "x"`)
	if n := len(err.(interface{ Unwrap() []error }).Unwrap()); n != 3 {
		t.Errorf("got %d joined errors, want 3", n)
	}
	if !reflect.DeepEqual(c, before) {
		t.Error("Validate changed the config")
	}
}

func TestRoundTrip(t *testing.T) {
	c, err := Parse([]byte(fullExample), "full.toml")
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(c); err != nil {
		t.Fatal(err)
	}
	back, err := Parse([]byte(b.String()), "encoded.toml")
	if err != nil {
		t.Fatalf("re-parsing encoded config: %v\n%s", err, b.String())
	}
	if !reflect.DeepEqual(back, c) {
		t.Errorf("round trip changed the config:\n%+v\n%+v", back, c)
	}
	if !strings.Contains(b.String(), `timeout = "2m30s"`) {
		t.Errorf("timeout not encoded as a duration string:\n%s", b.String())
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.toml", "[sandbox]\ntimeout = 30\nuser_id = 5\nvscode_port = 70000\n")
	noEnv := fakeEnv(nil)

	t.Run("explicit file", func(t *testing.T) {
		p := writeFile(t, dir, "ok.toml", "[llm]\nmodel='x'\n[sandbox]\ntimeout = 30\n")
		c, err := Load(p, noEnv)
		if err != nil || c.Sandbox.Timeout.Duration != 30*time.Second {
			t.Fatalf("Load = %+v, %v", c, err)
		}
	})
	t.Run("missing explicit file", func(t *testing.T) {
		p := filepath.Join(dir, "nope.toml")
		_, err := Load(p, noEnv)
		wantErr(t, err, p)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v is not fs.ErrNotExist", err)
		}
	})
	t.Run("file errors name the path", func(t *testing.T) {
		_, err := Load(good, noEnv)
		wantErr(t, err, good+": sandbox.vscode_port: must be 0 (none) or a port 1..65535, got 70000")
	})
	t.Run("env fixes a bad file value and overrides others", func(t *testing.T) {
		c, err := Load(good, fakeEnv(map[string]string{"SANDBOX_VSCODE_PORT": "8001", "SANDBOX_TIMEOUT": "2m"}))
		if err != nil {
			t.Fatal(err)
		}
		if s := c.Sandbox; s.VSCodePort != 8001 || s.Timeout.Duration != 2*time.Minute || s.UserID != 5 {
			t.Errorf("got %+v", s)
		}
	})
	t.Run("file and env errors together", func(t *testing.T) {
		p := writeFile(t, dir, "bad.toml", "[sandbox]\nbase_image = 'x'\n")
		_, err := Load(p, fakeEnv(map[string]string{"SANDBOX_USER_ID": "me"}))
		wantErr(t, err, p+`: unknown key "sandbox.base_image"`, `SANDBOX_USER_ID: must be a decimal integer, got "me"`)
	})
	t.Run("nil lookup reads no env", func(t *testing.T) {
		p := writeFile(t, dir, "plain.toml", "")
		t.Setenv("SANDBOX_USER_ID", "7")
		c, err := Load(p, nil)
		if err != nil || c.Sandbox.UserID != 1000 {
			t.Errorf("Load = %+v, %v", c.Sandbox, err)
		}
	})
}

func TestLoadDefaultPath(t *testing.T) {
	cfgDir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfgDir)
	t.Setenv("HOME", t.TempDir())
	p, err := DefaultPath()
	if err != nil {
		t.Skipf("no user config dir here: %v", err)
	}
	if want := filepath.Join(cfgDir, "berth", "berth.toml"); p != want {
		t.Skipf("DefaultPath = %s, not under XDG_CONFIG_HOME on this OS", p)
	}

	c, err := Load("", fakeEnv(nil))
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("missing default file: Load = %+v, %v; want defaults", c, err)
	}
	c, err = Load("", fakeEnv(map[string]string{"SANDBOX_USER_ID": "0"}))
	if err != nil || c.Sandbox.UserID != 0 {
		t.Fatalf("missing default file with env: Load = %+v, %v", c, err)
	}

	writeFile(t, cfgDir, "berth/berth.toml", "[sandbox]\nuser_id = 42\n")
	c, err = Load("", fakeEnv(nil))
	if err != nil || c.Sandbox.UserID != 42 {
		t.Fatalf("default file: Load = %+v, %v", c, err)
	}

	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Load("", fakeEnv(nil))
	wantErr(t, err, p) // a directory where the file should be is an error
}

// The commented example in the package documentation must parse.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(src), "A commented example")
	block, _, ok2 := strings.Cut(rest, "// The same settings")
	if !ok || !ok2 {
		t.Fatal("example not found in doc.go")
	}
	var b strings.Builder
	for _, line := range strings.Split(block, "\n") {
		if text, ok := strings.CutPrefix(line, "//\t"); ok {
			b.WriteString(text + "\n")
		}
	}
	c, err := Parse([]byte(b.String()), "doc.go example")
	if err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if l, _ := c.Sandbox.Limits(); l.Memory != 4<<30 || len(l.Ulimits) != 1 {
		t.Errorf("unexpected limits %+v", l)
	}
}

// OpenHands [sandbox] keys that berth does not use load, and are listed
// so the CLI can warn about them.
func TestOpenHandsOnlyKeysAreIgnored(t *testing.T) {
	c, err := Parse([]byte("[sandbox]\nkeep_runtime_alive = true\nplatform = \"linux/amd64\"\ntimeout = 30\n"), "oh.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := []string{"sandbox.keep_runtime_alive", "sandbox.platform"}
	if !slices.Equal(c.Ignored, want) || c.Sandbox.Timeout.Duration != 30*time.Second {
		t.Errorf("Ignored = %v, timeout %v; want %v, 30s", c.Ignored, c.Sandbox.Timeout, want)
	}
}
