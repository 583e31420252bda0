package config

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// BuildArgs parses RuntimeExtraBuildArgs into build arguments. Each item is
// "KEY=VALUE", "--build-arg=KEY=VALUE" or "--build-arg KEY=VALUE"; an item
// "--build-arg" followed by an item "KEY=VALUE" is accepted too, as an
// OpenHands list of buildx arguments writes it. Other build flags, a
// missing '=', a bad name or a repeated key are errors.
func (s Sandbox) BuildArgs() (map[string]string, error) {
	args, ps := parseBuildArgs(s.RuntimeExtraBuildArgs)
	if len(ps) > 0 {
		return nil, errors.Join(ps.errs("sandbox." + keyBuildArgs)...)
	}
	return args, nil
}

func parseBuildArgs(items []string) (map[string]string, problems) {
	var ps problems
	out := map[string]string{}
	for i := 0; i < len(items); i++ {
		item := items[i]
		sub := fmt.Sprintf("[%d]", i)
		kv, ok := strings.CutPrefix(item, "--build-arg=")
		if !ok {
			kv, ok = strings.CutPrefix(item, "--build-arg ")
		}
		if !ok && item == "--build-arg" {
			if i+1 == len(items) {
				ps.add(sub, show(item), "must be followed by an item KEY=VALUE")
				continue
			}
			i++
			kv = items[i]
		}
		if strings.HasPrefix(kv, "-") {
			ps.add(sub, show(item), "only build arguments are supported: KEY=VALUE or --build-arg=KEY=VALUE")
			continue
		}
		key, value, hasEq := strings.Cut(strings.TrimLeft(kv, " "), "=")
		if !hasEq {
			ps.add(sub, show(item), "must be KEY=VALUE or --build-arg=KEY=VALUE")
			continue
		}
		if !isEnvName(key) {
			ps.add(sub, show(item), "build argument name must be letters, digits and '_', not starting with a digit")
			continue
		}
		if _, dup := out[key]; dup {
			ps.add(sub, show(item), fmt.Sprintf("build argument %s is given twice", key))
			continue
		}
		out[key] = value
	}
	return out, ps
}

// isEnvName reports whether s is a portable variable name: [A-Za-z_][A-Za-z0-9_]*.
func isEnvName(s string) bool {
	if s == "" || isDigit(s[0]) {
		return false
	}
	for i := range len(s) {
		if !isLetter(s[i]) && !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// Env returns RuntimeStartupEnvVars as "K=V" strings sorted by key.
func (s Sandbox) Env() []string {
	out := make([]string, 0, len(s.RuntimeStartupEnvVars))
	for _, k := range slices.Sorted(maps.Keys(s.RuntimeStartupEnvVars)) {
		out = append(out, k+"="+s.RuntimeStartupEnvVars[k])
	}
	return out
}

// checkEnvVars: names must be non-empty and hold neither '=' nor NUL;
// values must not hold NUL.
func checkEnvVars(env map[string]string) problems {
	var ps problems
	for _, k := range slices.Sorted(maps.Keys(env)) {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			ps.add("", show(k), "variable names must be non-empty and contain neither '=' nor NUL")
		case strings.ContainsRune(env[k], 0):
			ps.add(k, show(env[k]), "must not contain a NUL byte")
		}
	}
	return ps
}
