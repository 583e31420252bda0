package config

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"

	"github.com/BurntSushi/toml"
)

// Security is the [security] table of berth serve: the policy applied to
// the commands and file operations agents ask for, and the audit trail.
//
//	[security]
//	policy = "audit"        # "off", "audit" (default), "deny" or "confirm"
//	medium = "allow"        # under "deny"/"confirm": "allow" (default), or "deny" (refuse/confirm) MEDIUM too
//	approval_timeout = "2m" # under "confirm": no approval this long refuses the action
//	audit_file = "/var/lib/berth/audit.jsonl"  # default: audit.jsonl in berth's state dir
//	rules_file = "rules.toml"                  # [[rule]] tables added to the built-in rules
//
// A tenant's `security_policy` in [[server.tenants]] overrides policy.
// docs/security.md describes the policies; docs/security-rules.md the rules.
type Security struct {
	Policy          string   `toml:"policy"`
	Medium          string   `toml:"medium"`
	ApprovalTimeout Duration `toml:"approval_timeout"`
	AuditFile       string   `toml:"audit_file"`
	RulesFile       string   `toml:"rules_file"`
}

// securityPolicies are the values of security.policy (and of a tenant's
// security_policy).
var securityPolicies = []string{"off", "audit", "deny", "confirm"}

// ValidSecurityPolicy reports whether p is "", "off", "audit", "deny" or
// "confirm".
func ValidSecurityPolicy(p string) bool {
	if p == "" {
		return true
	}
	for _, v := range securityPolicies {
		if p == v {
			return true
		}
	}
	return false
}

// decodeSecurity reads the [security] table strictly: unknown keys and bad
// values are errors naming the key.
// openHandsSecurityKeys are the keys of OpenHands' [security] table.
var openHandsSecurityKeys = []string{"confirmation_mode", "security_analyzer", "enable_security_analyzer"}

func decodeSecurity(v any) (Security, []error) {
	table, ok := v.(map[string]any)
	if !ok {
		return Security{}, []error{&Error{Key: "security", Value: show(v), Reason: "must be a table ([security])"}}
	}
	// OpenHands' own [security] keys are not berth's: an OpenHands
	// config.toml must load, so they are left out (and have no effect).
	table = maps.Clone(table)
	for _, k := range openHandsSecurityKeys {
		delete(table, k)
	}
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(table); err != nil {
		return Security{}, []error{fmt.Errorf("security: %w", err)}
	}
	var s Security
	md, err := toml.Decode(buf.String(), &s)
	if err != nil {
		return Security{}, []error{fmt.Errorf("security: %w", err)}
	}
	var errs []error
	for _, k := range md.Undecoded() {
		errs = append(errs, &Error{Key: "security." + k.String(), Unknown: true})
	}
	return s, append(errs, s.validate()...)
}

func (s Security) validate() []error {
	var errs []error
	if !ValidSecurityPolicy(s.Policy) {
		errs = append(errs, &Error{Key: "security.policy", Value: show(s.Policy), Reason: `must be "off", "audit", "deny" or "confirm"`})
	}
	if s.Medium != "" && s.Medium != "allow" && s.Medium != "deny" {
		errs = append(errs, &Error{Key: "security.medium", Value: show(s.Medium), Reason: `must be "allow" or "deny"`})
	}
	if s.ApprovalTimeout.Duration < 0 {
		errs = append(errs, &Error{Key: "security.approval_timeout", Value: s.ApprovalTimeout.String(), Reason: "must not be negative"})
	}
	return errs
}

// AuditPath is where the audit trail lives: audit_file, else audit.jsonl
// in berth's state dir (stateDir), next to its other per-machine state.
func (s Security) AuditPath(stateDir string) string {
	if s.AuditFile != "" {
		return s.AuditFile
	}
	return filepath.Join(stateDir, "audit.jsonl")
}
