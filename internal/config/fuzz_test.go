package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"", fullExample, openHandsExample,
		"[sandbox]\ntimeout = \"2m\"\n",
		"[sandbox]\nbase_image = 'x'\n",
		"sandbox = 1",
		"[sandbox]\ndocker_runtime_kwargs = { mem_limit = \"4Q\", ulimits = [{ name = \"nofile\", soft = 2, hard = 1 }] }\n",
		"[sandbox]\nvolumes = '/a:b:c:d'\nvscode_port = 1e3\nuser_id = -1\n",
		"[sandbox]\nruntime_startup_env_vars = { \"\" = \"x\" }\ntimeout = 1979-05-27\n",
		"[sandbox\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.toml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.toml: ") {
				t.Fatalf("error does not name its source: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted what Validate rejects: %v", err)
		}
		if _, err := c.Sandbox.Limits(); err != nil {
			t.Fatalf("Parse accepted bad kwargs: %v", err)
		}
		if _, err := c.Sandbox.BuildArgs(); err != nil {
			t.Fatalf("Parse accepted bad build args: %v", err)
		}
		var b strings.Builder
		if err := toml.NewEncoder(&b).Encode(c); err != nil {
			t.Fatalf("encoding a valid config: %v", err)
		}
		back, err := Parse([]byte(b.String()), "encoded.toml")
		if err != nil {
			t.Fatalf("re-parsing an encoded valid config: %v\n%s", err, b.String())
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("round trip changed the config:\n%#v\n%#v", back, c)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"0", "1024", "512m", "4G", "1.5g", "100kb", "2GiB", "", "-1", "4Q", "1e3",
		"9223372036854775807", "9223372036854775808", "8388607t", ".5", "1.", "0x10"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			if n != 0 {
				t.Fatalf("ParseSize(%q) = %d with error %v", s, n, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, n)
		}
		if allDigits(s) {
			if want, err := strconv.ParseInt(s, 10, 64); err != nil || n != want {
				t.Fatalf("ParseSize(%q) = %d, want %d (%v)", s, n, want, err)
			}
		}
		if k, err := ParseSize(strings.TrimSuffix(s, "b") + "k"); err == nil && allDigits(strings.TrimSuffix(s, "b")) && k != n*1024 {
			t.Fatalf("ParseSize(%q) = %d but with unit k gives %d", s, n, k)
		}
	})
}

func FuzzEnvValue(f *testing.F) {
	seeds := map[string][]string{
		"base_container_image":     {"alpine:3.20", "", "UPPER", "a b"},
		"use_host_network":         {"true", "YES", "0", "on", ""},
		"vscode_port":              {"8080", "70000", "-1", "0x50"},
		"timeout":                  {"120", "2m", "1.5", "-1", "1e400", "9223372037"},
		"docker_runtime_kwargs":    {"{'mem_limit': '4G', 'oom_kill_disable': True}", `{"ulimits": [{"name": "nofile", "soft": 1, "hard": 2}]}`, "{'privileged': True}", "{'a': [1, (2,), {'b': None}]}", `{"\ud83d\ude00": 1}`, "{"},
		"runtime_startup_env_vars": {`{"A": "1"}`, "{'A': 1}", "{'A=B': 'x'}", "[]"},
		"runtime_extra_build_args": {"A=1,B=2", `["A=1", "--build-arg=B=2"]`, "('--build-arg', 'A=1')", "A=1,,B", "[1]"},
		"volumes":                  {"/a:/b", "/a:/b:overlay,v:/c:ro", "/a"},
		"cuda_visible_devices":     {"0,2", "all"},
		"user_id":                  {"0", "2147483648"},
	}
	for i, fl := range fields {
		for _, v := range seeds[fl.key] {
			f.Add(uint8(i), v)
		}
	}
	f.Fuzz(func(t *testing.T, idx uint8, value string) {
		fl := fields[int(idx)%len(fields)]
		name := fl.envName()
		c := Default()
		err := c.ApplyEnv(fakeEnv(map[string]string{name: value}))
		if err != nil {
			if !strings.Contains(err.Error(), name) {
				t.Fatalf("error does not name %s: %v", name, err)
			}
			if !reflect.DeepEqual(c, Default()) {
				t.Fatalf("a rejected %s=%q changed the config", name, value)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s=%q accepted but invalid: %v", name, value, err)
		}
	})
}
