package config

import (
	"strings"
	"testing"
)

func TestServerTable(t *testing.T) {
	good := `
[server]
addr = "127.0.0.1:7474"
shutdown_timeout = "30s"
max_running = 5
idle_timeout = "30m"
idle_action = "stop"
ttl = "24h"
[[server.tenants]]
name = "alice"
token = "0123456789abcdef-alice"
max_sandboxes = 5
max_memory = "8g"
[[server.tenants]]
name = "bob"
token_sha256 = "` + strings.Repeat("ab", 32) + `"
allow_host_access = true
admin = true
`
	c, err := Parse([]byte(good), "b.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	s := c.Server
	if s.MaxRunning != 5 || s.IdleTimeout.Minutes() != 30 || s.IdleAction != "stop" || s.TTL.Hours() != 24 {
		t.Errorf("policies: %+v", s)
	}
	if s.Addr != "127.0.0.1:7474" || s.ShutdownTimeout.Seconds() != 30 || len(s.Tenants) != 2 || !s.Tenants[1].AllowHostAccess ||
		s.Tenants[0].Admin || !s.Tenants[1].Admin {
		t.Errorf("server: %+v", s)
	}
	if n, _ := s.Tenants[0].MaxMemoryBytes(); n != 8<<30 {
		t.Errorf("max_memory %d", n)
	}
	bad := []struct{ toml, want string }{
		{"[server]\nadress = \"x\"", `unknown key "server.adress"`},
		{"[server]\naddr = \"7474\"", "server.addr"},
		{"[server]\nidle_action = \"sleep\"", "server.idle_action"},
		{"[server]\nmax_running = -1", "server.max_running"},
		{"[server]\nhealth_check_path = \"health\"", "server.health_check_path"},
		{"[[server.tenants]]\nname = \"a\"", "set exactly one of token and token_sha256"},
		{"[[server.tenants]]\nname = \"a\"\ntoken = \"short\"", "16 characters"},
		{"[[server.tenants]]\nname = \"a\"\ntoken_sha256 = \"zz\"", "64 hex digits"},
		{"[[server.tenants]]\nname = \"a\"\ntoken = \"0123456789abcdefx\"\n[[server.tenants]]\nname = \"a\"\ntoken = \"0123456789abcdefy\"", "names another tenant"},
		{"[[server.tenants]]\nname = \"a\"\ntoken = \"0123456789abcdefx\"\nmax_memory = \"lots\"", "server.tenants[0].max_memory"},
		{"[[server.tenants]]\nname = \"a\"\ntoken = \"0123456789abcdefx\"\nrole = \"admin\"", `unknown key "server.tenants.role"`},
		{"[[server.tenants]]\nname = \"a\"\ntoken = \"0123456789abcdefx\"\nadmin = \"yes\"", `tenants.admin`},
	}
	for _, b := range bad {
		if _, err := Parse([]byte(b.toml), "b.toml"); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Parse(%q) = %v, want an error with %q", b.toml, err, b.want)
		}
	}
}
