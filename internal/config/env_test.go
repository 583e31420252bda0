package config

import (
	"reflect"
	"testing"
	"time"
)

func TestApplyEnv(t *testing.T) {
	tests := []struct {
		env   string
		value string
		get   func(Sandbox) any
		want  any
	}{
		{"SANDBOX_BASE_CONTAINER_IMAGE", "alpine:3.20", func(s Sandbox) any { return s.BaseContainerImage }, "alpine:3.20"},
		{"SANDBOX_RUNTIME_CONTAINER_IMAGE", "", func(s Sandbox) any { return s.RuntimeContainerImage }, ""},
		{"SANDBOX_VOLUMES", "/a:/workspace,/b:/b:ro", func(s Sandbox) any { return s.Volumes }, "/a:/workspace,/b:/b:ro"},
		{"SANDBOX_USE_HOST_NETWORK", "true", func(s Sandbox) any { return s.UseHostNetwork }, true},
		{"SANDBOX_USE_HOST_NETWORK", "TRUE", func(s Sandbox) any { return s.UseHostNetwork }, true},
		{"SANDBOX_USE_HOST_NETWORK", "1", func(s Sandbox) any { return s.UseHostNetwork }, true},
		{"SANDBOX_USE_HOST_NETWORK", "Yes", func(s Sandbox) any { return s.UseHostNetwork }, true},
		{"SANDBOX_ENABLE_GPU", "no", func(s Sandbox) any { return s.EnableGPU }, false},
		{"SANDBOX_ENABLE_GPU", " 0 ", func(s Sandbox) any { return s.EnableGPU }, false},
		{"SANDBOX_FORCE_REBUILD_RUNTIME", "False", func(s Sandbox) any { return s.ForceRebuildRuntime }, false},
		{"SANDBOX_RUNTIME_BINDING_ADDRESS", "::1", func(s Sandbox) any { return s.RuntimeBindingAddress }, "::1"},
		{"SANDBOX_VSCODE_PORT", "8001", func(s Sandbox) any { return s.VSCodePort }, 8001},
		{"SANDBOX_USER_ID", "0", func(s Sandbox) any { return s.UserID }, 0},
		{"SANDBOX_CUDA_VISIBLE_DEVICES", "0,3", func(s Sandbox) any { return s.CUDAVisibleDevices }, "0,3"},
		{"SANDBOX_RUNTIME_EXTRA_DEPS", "apk add jq", func(s Sandbox) any { return s.RuntimeExtraDeps }, "apk add jq"},
		{"SANDBOX_TIMEOUT", "300", func(s Sandbox) any { return s.Timeout.Duration }, 300 * time.Second},
		{"SANDBOX_TIMEOUT", "2m", func(s Sandbox) any { return s.Timeout.Duration }, 2 * time.Minute},
		{"SANDBOX_TIMEOUT", "1.5", func(s Sandbox) any { return s.Timeout.Duration }, 1500 * time.Millisecond},
		{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", `{"A": "1", "B": "x y"}`,
			func(s Sandbox) any { return s.RuntimeStartupEnvVars }, map[string]string{"A": "1", "B": "x y"}},
		{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", `{'RUNTIME_MAX_MEMORY_GB': '3'}`,
			func(s Sandbox) any { return s.RuntimeStartupEnvVars }, map[string]string{"RUNTIME_MAX_MEMORY_GB": "3"}},
		{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", `{}`,
			func(s Sandbox) any { return s.RuntimeStartupEnvVars }, map[string]string{}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", `{'mem_limit': '4G', 'oom_kill_disable': True, 'pids_limit': None}`,
			func(s Sandbox) any { return s.DockerRuntimeKwargs },
			map[string]any{"mem_limit": "4G", "oom_kill_disable": true, "pids_limit": nil}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", `{"cpu_period": 100000, "cpu_quota": 50000, "ulimits": [{"name": "nofile", "soft": 10, "hard": 20}]}`,
			func(s Sandbox) any { return s.DockerRuntimeKwargs },
			map[string]any{"cpu_period": int64(100000), "cpu_quota": int64(50000),
				"ulimits": []any{map[string]any{"name": "nofile", "soft": int64(10), "hard": int64(20)}}}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", "A=1, B=2", func(s Sandbox) any { return s.RuntimeExtraBuildArgs }, []string{"A=1", "B=2"}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", `["A=1,2", "--build-arg=B=3"]`, func(s Sandbox) any { return s.RuntimeExtraBuildArgs }, []string{"A=1,2", "--build-arg=B=3"}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", `('--build-arg', 'A=1')`, func(s Sandbox) any { return s.RuntimeExtraBuildArgs }, []string{"--build-arg", "A=1"}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", "", func(s Sandbox) any { return s.RuntimeExtraBuildArgs }, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			c := Default()
			c.Sandbox.RuntimeContainerImage = "prebuilt:1"
			c.Sandbox.UseHostNetwork = !c.Sandbox.UseHostNetwork // so "true" shows a change
			if err := c.ApplyEnv(fakeEnv(map[string]string{tt.env: tt.value})); err != nil {
				t.Fatal(err)
			}
			if got := tt.get(c.Sandbox); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after ApplyEnv: %v", err)
			}
		})
	}
}

func TestApplyEnvOverridesFile(t *testing.T) {
	c, err := Parse([]byte(fullExample), "full.toml")
	if err != nil {
		t.Fatal(err)
	}
	err = c.ApplyEnv(fakeEnv(map[string]string{
		"SANDBOX_BASE_CONTAINER_IMAGE":     "busybox:berth-test",
		"SANDBOX_TIMEOUT":                  "10",
		"SANDBOX_USE_HOST_NETWORK":         "false",
		"SANDBOX_DOCKER_RUNTIME_KWARGS":    "{'nano_cpus': 500000000}",
		"SANDBOX_RUNTIME_STARTUP_ENV_VARS": `{"ONLY": "this"}`,
		"UNRELATED":                        "x",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sandbox
	if s.BaseContainerImage != "busybox:berth-test" || s.Timeout.Duration != 10*time.Second || s.UseHostNetwork ||
		s.VSCodePort != 41234 {
		t.Errorf("got %+v", s)
	}
	if l, err := s.Limits(); err != nil || !reflect.DeepEqual(l, Limits{NanoCPUs: 5e8}) {
		t.Errorf("kwargs from env must replace the file's: %+v, %v", l, err)
	}
	if got := s.Env(); !reflect.DeepEqual(got, []string{"ONLY=this"}) {
		t.Errorf("env vars from env must replace the file's: %v", got)
	}
}

func TestApplyEnvErrors(t *testing.T) {
	tests := []struct {
		env, value string
		want       []string
	}{
		{"SANDBOX_USE_HOST_NETWORK", "on", []string{`SANDBOX_USE_HOST_NETWORK: must be true or false (also 1/0, yes/no), got "on"`}},
		{"SANDBOX_ENABLE_GPU", "", []string{`SANDBOX_ENABLE_GPU`, `got ""`}},
		{"SANDBOX_VSCODE_PORT", "80a", []string{`SANDBOX_VSCODE_PORT: must be a decimal integer, got "80a"`}},
		{"SANDBOX_VSCODE_PORT", "0x50", []string{`SANDBOX_VSCODE_PORT`, `"0x50"`}},
		{"SANDBOX_VSCODE_PORT", "70000", []string{`SANDBOX_VSCODE_PORT: must be 0 (none) or a port 1..65535, got 70000`}},
		{"SANDBOX_USER_ID", "99999999999999999999", []string{`SANDBOX_USER_ID: must be a decimal integer`}},
		{"SANDBOX_USER_ID", "-3", []string{`SANDBOX_USER_ID: must be a uid`, `got -3`}},
		{"SANDBOX_TIMEOUT", "soon", []string{`SANDBOX_TIMEOUT: must be seconds (120) or a duration ("2m", "90s"), got "soon"`}},
		{"SANDBOX_TIMEOUT", "0", []string{`SANDBOX_TIMEOUT: must be positive`}},
		{"SANDBOX_TIMEOUT", "1e400", []string{`SANDBOX_TIMEOUT`, `"1e400"`}},
		{"SANDBOX_RUNTIME_BINDING_ADDRESS", "localhost", []string{`SANDBOX_RUNTIME_BINDING_ADDRESS: must be an IP address`, `"localhost"`}},
		{"SANDBOX_BASE_CONTAINER_IMAGE", "UPPER", []string{`SANDBOX_BASE_CONTAINER_IMAGE: must be an image reference`, `"UPPER"`}},
		{"SANDBOX_VOLUMES", "/a:/b:rx", []string{`SANDBOX_VOLUMES: volume item 1 "/a:/b:rx": unknown mode "rx"`}},
		{"SANDBOX_CUDA_VISIBLE_DEVICES", "all", []string{`SANDBOX_CUDA_VISIBLE_DEVICES`, `"all"`}},
		{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", "A=1", []string{`SANDBOX_RUNTIME_STARTUP_ENV_VARS: must be a JSON object or a Python dict`, `got "A=1"`}},
		{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", "['A']", []string{`SANDBOX_RUNTIME_STARTUP_ENV_VARS: must be a JSON object`, `got "['A']"`}},
		{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", "{'A': 1}", []string{`SANDBOX_RUNTIME_STARTUP_ENV_VARS: A: must be a string, got 1`}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", "{'mem_limit': '4G',}x", []string{`SANDBOX_DOCKER_RUNTIME_KWARGS: must be a JSON object or a Python dict`, `got "{'mem_limit': '4G',}x"`}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", "{'mem_limit': 4G}", []string{`SANDBOX_DOCKER_RUNTIME_KWARGS`, `invalid number "4G"`}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", "{'privileged': True}", []string{`SANDBOX_DOCKER_RUNTIME_KWARGS: privileged: berth never runs privileged sandboxes`}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", "{'cap_add': ['ALL']}", []string{`SANDBOX_DOCKER_RUNTIME_KWARGS: unknown key "cap_add"`}},
		{"SANDBOX_DOCKER_RUNTIME_KWARGS", "{'mem_swappiness': 101}", []string{`SANDBOX_DOCKER_RUNTIME_KWARGS: mem_swappiness: must be an integer 0..100, got 101`}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", "A=1,,B=2", []string{`SANDBOX_RUNTIME_EXTRA_BUILD_ARGS: has an empty item`, `"A=1,,B=2"`}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", "[1, 2]", []string{`SANDBOX_RUNTIME_EXTRA_BUILD_ARGS: [0]: must be a string, got 1`}},
		{"SANDBOX_RUNTIME_EXTRA_BUILD_ARGS", "NOEQUALS", []string{`SANDBOX_RUNTIME_EXTRA_BUILD_ARGS: [0]: must be KEY=VALUE`, `"NOEQUALS"`}},
	}
	for _, tt := range tests {
		t.Run(tt.env+"="+tt.value, func(t *testing.T) {
			c := Default()
			before := Default()
			err := c.ApplyEnv(fakeEnv(map[string]string{tt.env: tt.value}))
			wantErr(t, err, tt.want...)
			if !reflect.DeepEqual(c, before) {
				t.Errorf("a bad variable changed the config: %+v", c.Sandbox)
			}
		})
	}
}

func TestApplyEnvReportsEveryVariable(t *testing.T) {
	c := Default()
	err := c.ApplyEnv(fakeEnv(map[string]string{
		"SANDBOX_USER_ID": "x", "SANDBOX_TIMEOUT": "y", "SANDBOX_VSCODE_PORT": "8080",
	}))
	wantErr(t, err, "SANDBOX_USER_ID", "SANDBOX_TIMEOUT")
	if c.Sandbox.VSCodePort != 8080 {
		t.Errorf("a good variable next to bad ones was not applied")
	}
}
