package agent

import (
	"slices"
	"testing"
)

func TestBaseEnv(t *testing.T) {
	id := Identity{UID: 1000, GID: 1000, Name: "berth", Home: "/home/berth", Shell: "/bin/bash"}
	got := baseEnv([]string{
		"PATH=/custom/bin", "LANG=C.UTF-8", "HOME=/root", "USER=root",
		"BERTH_AGENT_KEY=secret", "BERTH_AGENT_PORT=1", "BERTH_ANYTHING=x", "novalue", "=x",
	}, id)
	want := []string{
		"PATH=/custom/bin", "LANG=C.UTF-8",
		"HOME=/home/berth", "USER=berth", "LOGNAME=berth", "SHELL=/bin/bash",
	}
	if !slices.Equal(got, want) {
		t.Errorf("baseEnv = %q\nwant %q", got, want)
	}
	got = baseEnv(nil, id)
	if envValue(got, "PATH") != defaultPath {
		t.Errorf("PATH without one = %q", envValue(got, "PATH"))
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"A=1", "B=2", "PATH=/bin"}
	got := mergeEnv(base, map[string]string{"B": "two", "Z": "26", "C": ""})
	want := []string{"A=1", "PATH=/bin", "B=two", "C=", "Z=26"}
	if !slices.Equal(got, want) {
		t.Errorf("mergeEnv = %q, want %q", got, want)
	}
	if got := mergeEnv(base, nil); !slices.Equal(got, base) {
		t.Errorf("mergeEnv(nil) = %q", got)
	}
}

func TestIsReservedEnv(t *testing.T) {
	for _, name := range []string{"BERTH_AGENT_KEY", "BERTH_AGENT_PORT", "BERTH_USER_ID", "BERTH_WORKDIR", "BERTH_AGENT_ADDRESS", "BERTH_LOG_FORMAT", "BERTH_LOG_LEVEL"} {
		if !isReservedEnv(name) {
			t.Errorf("%s is not reserved", name)
		}
	}
	for _, name := range []string{"PATH", "BERTH", "berth_agent_key", "BERTH_MINE"} {
		if isReservedEnv(name) {
			t.Errorf("%s is reserved", name)
		}
	}
}
