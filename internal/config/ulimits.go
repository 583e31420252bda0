package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// ulimitNames are the resource names Docker accepts in ulimits, sorted.
var ulimitNames = []string{
	"as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice",
	"nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
}

const ulimitWant = `must be a list of tables like {name = "nofile", soft = 1024, hard = 4096}`

func ulimitsArg(ps *problems, v any) []Ulimit {
	list, ok := v.([]any)
	if !ok {
		ps.add("ulimits", show(v), ulimitWant)
		return nil
	}
	out := make([]Ulimit, 0, len(list))
	seen := map[string]bool{}
	for i, item := range list {
		sub := fmt.Sprintf("ulimits[%d]", i)
		m, ok := item.(map[string]any)
		if !ok {
			ps.add(sub, show(item), ulimitWant)
			continue
		}
		u, ok := ulimitArg(ps, sub, m)
		if !ok {
			continue
		}
		if seen[u.Name] {
			ps.add(sub+".name", show(u.Name), "is listed twice")
			continue
		}
		seen[u.Name] = true
		out = append(out, u)
	}
	return out
}

func ulimitArg(ps *problems, sub string, m map[string]any) (Ulimit, bool) {
	before := len(*ps)
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if k != "name" && k != "soft" && k != "hard" {
			*ps = append(*ps, &Error{Sub: sub + "." + k, Unknown: true, Reason: "a ulimit has name, soft and hard"})
		}
	}
	var u Ulimit
	name, ok := m["name"].(string)
	if !ok || !slices.Contains(ulimitNames, name) {
		ps.add(sub+".name", show(m["name"]), "must be one of "+strings.Join(ulimitNames, ", "))
	}
	u.Name = name
	for _, f := range []struct {
		key string
		dst *int64
	}{{"soft", &u.Soft}, {"hard", &u.Hard}} {
		v, present := m[f.key]
		if !present {
			ps.add(sub+"."+f.key, "", "is required (an integer, or -1 for unlimited)")
			continue
		}
		*f.dst = intArg(ps, sub+"."+f.key, v, -1, math.MaxInt64, "must be a non-negative integer, or -1 for unlimited")
	}
	if len(*ps) > before {
		return u, false
	}
	if u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard) {
		ps.add(sub+".soft", strconv.FormatInt(u.Soft, 10), fmt.Sprintf("must not exceed hard (%d)", u.Hard))
		return u, false
	}
	return u, true
}
