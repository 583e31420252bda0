package config

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net"

	"github.com/BurntSushi/toml"

	"github.com/berth-dev/berth/internal/units"
)

// Server is the [server] table of berth serve:
//
//	[server]
//	addr = "127.0.0.1:7474"
//	shutdown_timeout = "30s"
//	[[server.tenants]]
//	name = "team-a"
//	token_sha256 = "<hex>"      # or token = "..." (16 characters or more)
//	max_sandboxes = 20
//	max_memory = "32g"
//	allow_host_access = false   # volumes, host network, extra networks, GPUs
//	admin = false               # every tenant's audit trail; resize the warm pools
//
// and the policies: max_running = 5, idle_timeout = "30m", idle_action =
// "pause" or "stop", ttl = "24h", health_check_path = "/health".
type Server struct {
	Addr            string         `toml:"addr"`
	ShutdownTimeout Duration       `toml:"shutdown_timeout"`
	Tenants         []ServerTenant `toml:"tenants"`

	// Lifecycle policies and health checks of the sandboxes it serves.
	MaxRunning      int      `toml:"max_running"`       // pause the oldest above this many running; 0 = off
	IdleTimeout     Duration `toml:"idle_timeout"`      // no API activity this long → idle_action; 0 = off
	IdleAction      string   `toml:"idle_action"`       // "pause" (default) or "stop"
	TTL             Duration `toml:"ttl"`               // remove this long after creation; 0 = off
	HealthCheckPath string   `toml:"health_check_path"` // agent path checked; default "/health"
	// The reconciler: how often it runs (default 1m), and how old a
	// never-started berth container must be before it is removed (2m).
	ReconcileInterval Duration `toml:"reconcile_interval"`
	CreateGrace       Duration `toml:"create_grace"`
}

// ServerTenant is one [[server.tenants]] entry.
type ServerTenant struct {
	Name            string `toml:"name"`
	Token           string `toml:"token"`
	TokenSHA256     string `toml:"token_sha256"`
	MaxSandboxes    int    `toml:"max_sandboxes"`
	MaxMemory       string `toml:"max_memory"`
	AllowHostAccess bool   `toml:"allow_host_access"`
	SecurityPolicy  string `toml:"security_policy"` // overrides [security] policy for this tenant
	// Admin makes the tenant an operator: it may read every tenant's
	// audit trail and resize the warm pools (never another tenant's
	// sandboxes).
	Admin bool `toml:"admin"`
}

// MaxMemoryBytes is MaxMemory parsed; 0 when unset.
func (t ServerTenant) MaxMemoryBytes() (int64, error) {
	if t.MaxMemory == "" {
		return 0, nil
	}
	return units.ParseSize(t.MaxMemory)
}

// decodeServer reads the [server] table strictly: unknown keys and bad
// values are errors naming the key.
func decodeServer(v any) (Server, []error) {
	table, ok := v.(map[string]any)
	if !ok {
		return Server{}, []error{&Error{Key: "server", Value: show(v), Reason: "must be a table ([server])"}}
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(table); err != nil {
		return Server{}, []error{fmt.Errorf("server: %w", err)}
	}
	var s Server
	md, err := toml.Decode(buf.String(), &s)
	if err != nil {
		return Server{}, []error{fmt.Errorf("server: %w", err)}
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, &Error{Key: "server." + k.String(), Unknown: true})
	}
	return s, append(errs, s.validate()...)
}

func (s Server) validate() []error {
	var errs []error
	bad := func(key, value, reason string) { errs = append(errs, &Error{Key: key, Value: value, Reason: reason}) }
	if s.Addr != "" {
		if _, port, err := net.SplitHostPort(s.Addr); err != nil || port == "" {
			bad("server.addr", show(s.Addr), `must be host:port, e.g. "127.0.0.1:7474"`)
		}
	}
	if s.ShutdownTimeout.Duration < 0 {
		bad("server.shutdown_timeout", s.ShutdownTimeout.String(), "must not be negative")
	}
	if s.MaxRunning < 0 {
		bad("server.max_running", fmt.Sprint(s.MaxRunning), "must be 0 (off) or more")
	}
	if s.IdleTimeout.Duration < 0 || s.TTL.Duration < 0 {
		bad("server.idle_timeout/ttl", s.IdleTimeout.String()+"/"+s.TTL.String(), "must not be negative (0 = off)")
	}
	if s.ReconcileInterval.Duration < 0 || s.CreateGrace.Duration < 0 {
		bad("server.reconcile_interval/create_grace", s.ReconcileInterval.String()+"/"+s.CreateGrace.String(), "must not be negative (0 = default)")
	}
	if s.IdleAction != "" && s.IdleAction != "pause" && s.IdleAction != "stop" {
		bad("server.idle_action", show(s.IdleAction), `must be "pause" or "stop"`)
	}
	if s.HealthCheckPath != "" && s.HealthCheckPath[0] != '/' {
		bad("server.health_check_path", show(s.HealthCheckPath), `must start with "/"`)
	}
	names := map[string]bool{}
	for i, t := range s.Tenants {
		key := fmt.Sprintf("server.tenants[%d]", i)
		switch {
		case t.Name == "":
			bad(key+".name", `""`, "every tenant needs a name")
		case names[t.Name]:
			bad(key+".name", show(t.Name), "names another tenant too")
		case t.Name == "pool":
			bad(key+".name", show(t.Name), "is reserved for warm pools")
		}
		names[t.Name] = true
		switch {
		case (t.Token == "") == (t.TokenSHA256 == ""):
			bad(key, show(t.Name), "set exactly one of token and token_sha256")
		case t.Token != "" && len(t.Token) < 16:
			bad(key+".token", "(hidden)", "must be 16 characters or more")
		case t.TokenSHA256 != "":
			if b, err := hex.DecodeString(t.TokenSHA256); err != nil || len(b) != 32 {
				bad(key+".token_sha256", show(t.TokenSHA256), "must be 64 hex digits (printf %s TOKEN | sha256sum)")
			}
		}
		if !ValidSecurityPolicy(t.SecurityPolicy) {
			bad(key+".security_policy", show(t.SecurityPolicy), `must be "off", "audit", "deny" or "confirm"`)
		}
		if t.MaxSandboxes < 0 {
			bad(key+".max_sandboxes", fmt.Sprint(t.MaxSandboxes), "must be 0 (no cap) or more")
		}
		if _, err := t.MaxMemoryBytes(); err != nil {
			bad(key+".max_memory", show(t.MaxMemory), err.Error())
		}
	}
	return errs
}
