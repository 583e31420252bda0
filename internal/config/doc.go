// Package config reads berth.toml and the SANDBOX_* environment variables.
//
// The file's [sandbox] table uses the key names of OpenHands' SandboxConfig,
// so an OpenHands config.toml loads: its other tables ([core], [llm],
// [agent], ...) are ignored. An unknown key inside [sandbox] is an error.
// Precedence, lowest first: defaults, the file, SANDBOX_<KEY> environment
// variables, then command-line flags (set on the Config by the caller,
// which then calls Validate).
//
// A commented example with every key. Images, address, timeout and user_id
// show their defaults; the other values are examples (their default is
// empty, false or 0):
//
//	[sandbox]
//	# Image the runtime image is built from.
//	base_container_image = "debian:bookworm-slim"
//	# A prebuilt runtime image; when set, nothing is built.
//	runtime_container_image = ""
//	# host:container[:mode], comma-separated; mode rw (default), ro or
//	# overlay (copy-on-write over a read-only host dir). A relative host
//	# path names a Docker volume.
//	volumes = "/home/me/project:/workspace,/data:/data:ro"
//	use_host_network = false
//	# Host IP the sandbox's published ports bind to; "0.0.0.0" = all.
//	runtime_binding_address = "127.0.0.1"
//	# Fixed host port for VS Code; 0 = none.
//	vscode_port = 0
//	enable_gpu = false
//	# "" = all GPUs (when enable_gpu), or GPU numbers like "0,2".
//	cuda_visible_devices = ""
//	# Shell snippet run while building the runtime image.
//	runtime_extra_deps = "apt-get install -y --no-install-recommends jq"
//	force_rebuild_runtime = false
//	runtime_extra_build_args = ["HTTP_PROXY=http://proxy:3128"]
//	# How long to wait for a new sandbox to answer: seconds or "2m".
//	timeout = 120
//	# uid commands run as inside the sandbox; 0 = root.
//	user_id = 1000
//
//	[sandbox.runtime_startup_env_vars]
//	TZ = "UTC"
//
//	# docker-py run() keyword arguments berth supports (see Limits).
//	[sandbox.docker_runtime_kwargs]
//	mem_limit = "4g"        # also memswap_limit (-1 = unlimited), shm_size
//	cpu_period = 100000     # with cpu_quota: here one CPU; or nano_cpus
//	cpu_quota = 100000
//	pids_limit = 1024
//	ulimits = [{ name = "nofile", soft = 1024, hard = 4096 }]
//
// The same settings from the environment:
//
//	SANDBOX_BASE_CONTAINER_IMAGE=debian:bookworm-slim
//	SANDBOX_TIMEOUT=2m
//	SANDBOX_DOCKER_RUNTIME_KWARGS="{'mem_limit': '4G', 'oom_kill_disable': True}"
//	SANDBOX_RUNTIME_STARTUP_ENV_VARS='{"TZ": "UTC"}'
//	SANDBOX_RUNTIME_EXTRA_BUILD_ARGS=HTTP_PROXY=http://proxy:3128,NO_PROXY=localhost
package config
