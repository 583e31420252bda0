package agent

import (
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
)

// defaultPath is the PATH of a child when the agent itself has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// agentEnvPrefix marks the agent's own variables. None of them, and so never
// the key, reaches a child.
const agentEnvPrefix = "BERTH_"

// isReservedEnv reports whether a request may not set name: it is one of
// the agent's contract variables.
func isReservedEnv(name string) bool {
	switch name {
	case agentapi.EnvKey, agentapi.EnvPort, agentapi.EnvUserID, agentapi.EnvWorkdir,
		agentapi.EnvListen, agentapi.EnvLogFormat, agentapi.EnvLogLevel:
		return true
	}
	return false
}

// baseEnv is the environment every child starts from: the agent's own
// environment (the image's ENV and what the host set on the container) less
// every BERTH_* variable, with PATH defaulted and HOME, USER, LOGNAME and
// SHELL those of the sandbox user.
func baseEnv(agentEnv []string, id Identity) []string {
	user := map[string]string{
		"HOME":    id.Home,
		"USER":    id.Name,
		"LOGNAME": id.Name,
		"SHELL":   id.Shell,
	}
	out := make([]string, 0, len(agentEnv)+len(user)+1)
	hasPath := false
	for _, kv := range agentEnv {
		name, _, ok := strings.Cut(kv, "=")
		if !ok || name == "" || strings.HasPrefix(name, agentEnvPrefix) {
			continue
		}
		if _, ok := user[name]; ok {
			continue
		}
		if name == "PATH" {
			hasPath = true
		}
		out = append(out, kv)
	}
	if !hasPath {
		out = append(out, "PATH="+defaultPath)
	}
	for _, name := range []string{"HOME", "USER", "LOGNAME", "SHELL"} {
		if user[name] != "" {
			out = append(out, name+"="+user[name])
		}
	}
	return out
}

// mergeEnv returns base with the request's variables set over it, in a
// stable order.
func mergeEnv(base []string, extra map[string]string) []string {
	if len(extra) == 0 {
		return slices.Clone(base)
	}
	out := make([]string, 0, len(base)+len(extra))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if _, ok := extra[name]; ok {
			continue
		}
		out = append(out, kv)
	}
	names := make([]string, 0, len(extra))
	for k := range extra {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		out = append(out, k+"="+extra[k])
	}
	return out
}

// envValue returns the value of name in env, the last one winning.
func envValue(env []string, name string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == name {
			v = val
		}
	}
	return v
}
