package config_test

import (
	"fmt"

	"github.com/berth-dev/berth/internal/config"
)

func ExampleParse() {
	const berthToml = `
[llm]                     # other tables of an OpenHands config.toml are ignored
model = "some-model"

[sandbox]
base_container_image = "python:3.12-slim"
volumes = "/home/me/project:/workspace"
timeout = "3m"            # or seconds: 180
user_id = 0               # root

[sandbox.docker_runtime_kwargs]
mem_limit = "4g"
nano_cpus = 2000000000    # two CPUs
`
	c, err := config.Parse([]byte(berthToml), "berth.toml")
	if err != nil {
		fmt.Println(err)
		return
	}
	l, _ := c.Sandbox.Limits()
	fmt.Println(c.Sandbox.BaseContainerImage, c.Sandbox.Timeout, c.Sandbox.UserID)
	fmt.Println(l.Memory, l.NanoCPUs)
	fmt.Println(c.Sandbox.RuntimeBindingAddress) // a default
	// Output:
	// python:3.12-slim 3m0s 0
	// 4294967296 2000000000
	// 127.0.0.1
}

func ExampleParse_errors() {
	_, err := config.Parse([]byte("[sandbox]\nbase_image = 'x'\nvscode_port = 70000\n"), "berth.toml")
	fmt.Println(err)
	// Output:
	// berth.toml: unknown key "sandbox.base_image" (did you mean "base_container_image"?)
	// berth.toml: sandbox.vscode_port: must be 0 (none) or a port 1..65535, got 70000
}

func ExampleConfig_ApplyEnv() {
	env := map[string]string{
		"SANDBOX_TIMEOUT":               "90",
		"SANDBOX_DOCKER_RUNTIME_KWARGS": "{'mem_limit': '4G', 'oom_kill_disable': True}",
	}
	c := config.Default()
	err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		fmt.Println(err)
		return
	}
	l, _ := c.Sandbox.Limits()
	fmt.Println(c.Sandbox.Timeout, l.Memory, *l.OOMKillDisable)
	// Output: 1m30s 4294967296 true
}
