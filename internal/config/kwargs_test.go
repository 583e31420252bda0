package config

import (
	"reflect"
	"testing"
)

func TestParseSize(t *testing.T) {
	good := map[string]int64{
		"0": 0, "1024": 1024, "1024b": 1024, "1024B": 1024, "100k": 100 << 10, "100kb": 100 << 10,
		"512m": 512 << 20, "512MiB": 512 << 20, "4G": 4 << 30, "1g": 1 << 30, "2GB": 2 << 30,
		"1.5g": 3 << 29, "0.5k": 512, "1t": 1 << 40, "1.0001": 1,
	}
	for in, want := range good {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "4Q", "4 g", " 4g", "g", ".5g", "5.g", "1..2", "1e3", "0x10",
		"9223372036854775808", "8388608t", "1kib2", "ib", "1bb", "+1"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestLimitsErrors(t *testing.T) {
	tests := []struct {
		name string
		kw   map[string]any
		want []string
	}{
		{"size type", map[string]any{"shm_size": true}, []string{"sandbox.docker_runtime_kwargs.shm_size: must be a size", "got true"}},
		{"negative size", map[string]any{"mem_limit": int64(-5)}, []string{"mem_limit", "got -5"}},
		{"memory minimum", map[string]any{"mem_limit": "1m"}, []string{"mem_limit: must be at least 6m"}},
		{"memswap below memory", map[string]any{"mem_limit": "1g", "memswap_limit": "512m"}, []string{"memswap_limit: must be at least mem_limit"}},
		{"memswap without memory", map[string]any{"memswap_limit": "1g"}, []string{"memswap_limit: needs mem_limit"}},
		{"memswap -2", map[string]any{"memswap_limit": int64(-2)}, []string{"memswap_limit", "got -2"}},
		{"swappiness", map[string]any{"mem_swappiness": int64(-1)}, []string{"mem_swappiness: must be an integer 0..100, got -1"}},
		{"swappiness string", map[string]any{"mem_swappiness": "10"}, []string{"mem_swappiness", `got "10"`}},
		{"oom type", map[string]any{"oom_kill_disable": "true"}, []string{`oom_kill_disable: must be true or false, got "true"`}},
		{"period low", map[string]any{"cpu_period": int64(999)}, []string{"cpu_period: must be an integer 1000..1000000", "got 999"}},
		{"period high", map[string]any{"cpu_period": int64(1000001)}, []string{"cpu_period", "got 1000001"}},
		{"quota low", map[string]any{"cpu_quota": int64(10)}, []string{"cpu_quota: must be an integer >= 1000", "got 10"}},
		{"quota -2", map[string]any{"cpu_quota": int64(-2)}, []string{"cpu_quota", "got -2"}},
		{"quota float", map[string]any{"cpu_quota": 1500.5}, []string{"cpu_quota", "got 1500.5"}},
		{"nano negative", map[string]any{"nano_cpus": int64(-1)}, []string{"nano_cpus: must be a non-negative integer", "got -1"}},
		{"nano with period", map[string]any{"nano_cpus": int64(1e9), "cpu_period": int64(100000)}, []string{"nano_cpus: cannot be combined with cpu_period"}},
		{"pids zero", map[string]any{"pids_limit": int64(0)}, []string{"pids_limit: must be a positive integer, or -1", "got 0"}},
		{"cpuset", map[string]any{"cpuset_cpus": "3-1"}, []string{`cpuset_cpus: must be CPU numbers and ranges like "0-1,3", got "3-1"`}},
		{"cpuset spaces", map[string]any{"cpuset_cpus": "0, 1"}, []string{`cpuset_cpus`, `got "0, 1"`}},
		{"cpuset empty", map[string]any{"cpuset_cpus": ""}, []string{`cpuset_cpus`, `got ""`}},
		{"runtime", map[string]any{"runtime": "run sc"}, []string{`runtime: must be a runtime name`, `got "run sc"`}},
		{"ulimits type", map[string]any{"ulimits": "nofile=1024"}, []string{`ulimits: must be a list of tables`}},
		{"ulimit item", map[string]any{"ulimits": []any{"nofile"}}, []string{`ulimits[0]: must be a list of tables`}},
		{"ulimit soft>hard", map[string]any{"ulimits": []any{map[string]any{"name": "nofile", "soft": int64(10), "hard": int64(5)}}},
			[]string{"ulimits[0].soft: must not exceed hard (5), got 10"}},
		{"ulimit unknown field", map[string]any{"ulimits": []any{map[string]any{"name": "nofile", "soft": int64(1), "hard": int64(1), "Max": int64(2)}}},
			[]string{`unknown key "sandbox.docker_runtime_kwargs.ulimits[0].Max"`}},
		{"ulimit dup", map[string]any{"ulimits": []any{
			map[string]any{"name": "nofile", "soft": int64(1), "hard": int64(1)},
			map[string]any{"name": "nofile", "soft": int64(2), "hard": int64(2)}}},
			[]string{`ulimits[1].name: is listed twice, got "nofile"`}},
		{"privileged", map[string]any{"privileged": true}, []string{"privileged: berth never runs privileged sandboxes"}},
		{"privileged string", map[string]any{"privileged": "false"}, []string{"privileged: berth never runs privileged sandboxes", `got "false"`}},
		{"unknown", map[string]any{"security_opt": []any{}}, []string{`unknown key "sandbox.docker_runtime_kwargs.security_opt"`, "supported: cpu_period"}},
		{"hint", map[string]any{"cpus": 2.0}, []string{`"sandbox.docker_runtime_kwargs.cpus" (use nano_cpus`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := Sandbox{DockerRuntimeKwargs: tt.kw}.Limits()
			wantErr(t, err, tt.want...)
			if !reflect.DeepEqual(l, Limits{}) {
				t.Errorf("on error Limits() = %+v, want zero", l)
			}
		})
	}
}

func TestLimitsGood(t *testing.T) {
	tests := []struct {
		kw   map[string]any
		want Limits
	}{
		{map[string]any{"mem_limit": int64(8 << 20), "memswap_limit": "-1"}, Limits{Memory: 8 << 20, MemorySwap: -1}},
		{map[string]any{"mem_limit": "4G", "memswap_limit": "0"}, Limits{Memory: 4 << 30}}, // OpenHands' own test
		{map[string]any{"mem_limit": "1g", "memswap_limit": "2g"}, Limits{Memory: 1 << 30, MemorySwap: 2 << 30}},
		{map[string]any{"mem_limit": 0.0}, Limits{}},
		{map[string]any{"nano_cpus": 1.5e9}, Limits{NanoCPUs: 1.5e9}},
		{map[string]any{"cpu_quota": int64(-1), "pids_limit": int64(-1)}, Limits{CPUQuota: -1, PidsLimit: -1}},
		{map[string]any{"cpuset_cpus": "0"}, Limits{CpusetCpus: "0"}},
		{map[string]any{"pids_limit": nil, "mem_limit": nil, "privileged": false}, Limits{}},
		{map[string]any{"privileged": nil}, Limits{}},
		{map[string]any{"ulimits": []any{}}, Limits{Ulimits: []Ulimit{}}},
		{map[string]any{"ulimits": []any{map[string]any{"name": "stack", "soft": int64(-1), "hard": int64(-1)}}},
			Limits{Ulimits: []Ulimit{{Name: "stack", Soft: -1, Hard: -1}}}},
	}
	for _, tt := range tests {
		l, err := Sandbox{DockerRuntimeKwargs: tt.kw}.Limits()
		if err != nil || !reflect.DeepEqual(l, tt.want) {
			t.Errorf("Limits(%v) = %+v, %v; want %+v", tt.kw, l, err, tt.want)
		}
	}
}
