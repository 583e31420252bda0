package config

import (
	"reflect"
	"testing"
)

func TestBuildArgs(t *testing.T) {
	good := []struct {
		in   []string
		want map[string]string
	}{
		{nil, map[string]string{}},
		{[]string{"A=1", "B="}, map[string]string{"A": "1", "B": ""}},
		{[]string{"--build-arg=A=x=y", "--build-arg B=2"}, map[string]string{"A": "x=y", "B": "2"}},
		{[]string{"--build-arg", "PIP_INDEX=https://pypi.example/simple"}, map[string]string{"PIP_INDEX": "https://pypi.example/simple"}},
	}
	for _, tt := range good {
		got, err := Sandbox{RuntimeExtraBuildArgs: tt.in}.BuildArgs()
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("BuildArgs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	bad := []struct {
		in   []string
		want string
	}{
		{[]string{"A"}, `sandbox.runtime_extra_build_args.[0]: must be KEY=VALUE or --build-arg=KEY=VALUE, got "A"`},
		{[]string{"=1"}, `[0]: build argument name must be`},
		{[]string{"1A=1"}, `got "1A=1"`},
		{[]string{"A B=1"}, `got "A B=1"`},
		{[]string{"A=1", "A=2"}, `[1]: build argument A is given twice, got "A=2"`},
		{[]string{"--no-cache"}, `only build arguments are supported`},
		{[]string{"--build-arg"}, `[0]: must be followed by an item KEY=VALUE`},
		{[]string{"--build-arg", "--pull"}, `only build arguments are supported`},
	}
	for _, tt := range bad {
		_, err := Sandbox{RuntimeExtraBuildArgs: tt.in}.BuildArgs()
		wantErr(t, err, tt.want)
	}
}

func TestEnv(t *testing.T) {
	s := Sandbox{RuntimeStartupEnvVars: map[string]string{"Z": "1", "A": "x=y", "M": ""}}
	if got, want := s.Env(), []string{"A=x=y", "M=", "Z=1"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Env() = %v, want %v", got, want)
	}
}
