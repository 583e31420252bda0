package config

import (
	"strings"
	"testing"
)

func TestSecurityTable(t *testing.T) {
	c, err := Parse([]byte("[security]\npolicy = \"deny\"\nmedium = \"deny\"\napproval_timeout = \"30s\"\nconfirmation_mode = true\nsecurity_analyzer = \"invariant\"\n"), "b.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if s := c.Security; s.Policy != "deny" || s.Medium != "deny" || s.ApprovalTimeout.Seconds() != 30 {
		t.Errorf("security: %+v", s)
	}
	if got := c.Security.AuditPath("/state"); got != "/state/audit.jsonl" {
		t.Errorf("default audit path %q", got)
	}
	for _, b := range []struct{ toml, want string }{
		{"[security]\npolicy = \"block\"", "security.policy"},
		{"[security]\nmedium = \"maybe\"", "security.medium"},
		{"[security]\npolcy = \"deny\"", `unknown key "security.polcy"`},
		{"[[server.tenants]]\nname = \"a\"\ntoken = \"0123456789abcdefx\"\nsecurity_policy = \"nope\"", "security_policy"},
	} {
		if _, err := Parse([]byte(b.toml), "b.toml"); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Parse(%q) = %v, want %q", b.toml, err, b.want)
		}
	}
}
