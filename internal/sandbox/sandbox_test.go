package sandbox

import (
	"errors"
	"strings"
	"testing"
)

func TestStatusFromState(t *testing.T) {
	cases := map[string]Status{
		"running":    StatusRunning,
		"paused":     StatusPaused,
		"exited":     StatusPaused,
		"created":    StatusStarting,
		"restarting": StatusStarting,
		"removing":   StatusMissing,
		"dead":       StatusError,
		"":           StatusError,
		"bogus":      StatusError,
	}
	for state, want := range cases {
		if got := StatusFromState(state); got != want {
			t.Errorf("StatusFromState(%q) = %s, want %s", state, got, want)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := Spec{Image: ImageSpec{Base: "debian:bookworm-slim"}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	cases := []struct {
		name string
		mod  func(*Spec)
		want string
	}{
		{"bad name", func(s *Spec) { s.Name = "-x" }, `name "-x"`},
		{"name with space", func(s *Spec) { s.Name = "a b" }, `name "a b"`},
		{"bad env key", func(s *Spec) { s.Env = map[string]string{"1A": "x"} }, `env "1A"`},
		{"reserved env", func(s *Spec) { s.Env = map[string]string{"BERTH_AGENT_KEY": "x"} }, `env "BERTH_AGENT_KEY"`},
		{"reserved label", func(s *Spec) { s.Labels = map[string]string{LabelID: "x"} }, `label "berth.id"`},
		{"empty label", func(s *Spec) { s.Labels = map[string]string{"": "x"} }, `label ""`},
		{"no image", func(s *Spec) { s.Image = ImageSpec{} }, "neither a base image"},
		{"bad bind", func(s *Spec) { s.BindAddress = "localhost" }, `bind address "localhost"`},
		{"negative uid", func(s *Spec) { s.UserID = -1 }, "user id -1"},
		{"bad security policy", func(s *Spec) { s.SecurityPolicy = "strict" }, `security_policy "strict": use off, audit, confirm or deny`},
		{"policy label", func(s *Spec) { s.Labels = map[string]string{LabelSecurityPolicy: "off"} }, `label "berth.security-policy"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			c.mod(&s)
			err := s.Validate()
			if err == nil || !errors.Is(err, ErrInvalidSpec) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Validate() = %v, want ErrInvalidSpec mentioning %q", err, c.want)
			}
		})
	}
	for _, p := range []string{"", PolicyOff, PolicyAudit, PolicyConfirm, PolicyDeny} {
		s := ok
		s.SecurityPolicy = p
		if err := s.Validate(); err != nil {
			t.Errorf("security policy %q refused: %v", p, err)
		}
	}
	// A caller's own berth.* label that berth does not set is allowed.
	s := ok
	s.Labels = map[string]string{"berth.test-run": "1"}
	if err := s.Validate(); err != nil {
		t.Fatalf("berth.test-run label refused: %v", err)
	}
}
