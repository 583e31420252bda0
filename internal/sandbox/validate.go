package sandbox

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
)

// Label keys berth sets on every container it makes. A caller may not set
// them; other keys, "berth." ones included, are the caller's.
const (
	LabelID           = "berth.id"
	LabelName         = "berth.name"
	LabelOwner        = "berth.owner"
	LabelCreatedBy    = "berth.created-by"
	LabelImage        = "berth.image"
	LabelRuntimeImage = "berth.runtime-image"
	LabelPorts        = "berth.ports"   // "agent=31000:31000,app1=50001:50001,..."
	LabelNetwork      = "berth.network" // bridge, none, internal or host
	LabelUserID       = "berth.user-id"
	// LabelSecurityPolicy is the sandbox's own security policy
	// (Spec.SecurityPolicy), set only when the create asked for one.
	LabelSecurityPolicy = "berth.security-policy"
	// LabelLabelKeys lists the caller's label keys (comma-separated), so the
	// caller's labels can be told from those the image brings.
	LabelLabelKeys = "berth.label-keys"
)

var reservedLabels = map[string]bool{
	LabelID: true, LabelName: true, LabelOwner: true, LabelCreatedBy: true,
	LabelImage: true, LabelRuntimeImage: true, LabelPorts: true, LabelNetwork: true, LabelUserID: true,
	LabelLabelKeys: true, LabelSecurityPolicy: true,
}

// Security policies of berth serve, from the loosest to the strictest
// (docs/security.md): what the server does with an agent's action once it
// has judged its risk.
const (
	PolicyOff     = "off"     // no analysis, no audit record
	PolicyAudit   = "audit"   // judge and record every action; run it
	PolicyConfirm = "confirm" // hold what deny refuses for a person's approval
	PolicyDeny    = "deny"    // refuse HIGH (and MEDIUM with medium = "deny")
)

// ValidPolicy reports whether p is one of the policies.
func ValidPolicy(p string) bool {
	switch p {
	case PolicyOff, PolicyAudit, PolicyConfirm, PolicyDeny:
		return true
	}
	return false
}

// OwnerPool owns the sandboxes of warm pools until a create claims one;
// they are no tenant's, and neither listed nor managed by policies.
const OwnerPool = "pool"

// IsReservedLabel reports whether key is one berth sets itself.
func IsReservedLabel(key string) bool { return reservedLabels[key] }

var (
	nameRE   = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks everything in the spec that can be checked without a
// backend, and reports every problem, each naming the field and the value.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvalidSpec}, args...)...))
	}
	if s.Name != "" && !nameRE.MatchString(s.Name) {
		bad("name %q: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", s.Name)
	}
	for k := range s.Env {
		if !envKeyRE.MatchString(k) {
			bad("env %q: a variable name is letters, digits and '_', not starting with a digit", k)
		}
		if strings.HasPrefix(k, "BERTH_") {
			bad("env %q: BERTH_* variables are reserved for berth", k)
		}
	}
	for k := range s.Labels {
		switch {
		case k == "" || strings.ContainsAny(k, " \t\n=,"):
			bad("label %q: a label key is non-empty, without spaces, '=' or ','", k)
		case IsReservedLabel(k):
			bad("label %q: berth sets this label itself", k)
		}
	}
	if s.SecurityPolicy != "" && !ValidPolicy(s.SecurityPolicy) {
		bad("security_policy %q: use %s, %s, %s or %s", s.SecurityPolicy, PolicyOff, PolicyAudit, PolicyConfirm, PolicyDeny)
	}
	if s.Image.Base == "" && s.Image.Runtime == "" {
		bad("image: neither a base image nor a runtime image is set")
	}
	if s.BindAddress != "" {
		if _, err := netip.ParseAddr(s.BindAddress); err != nil {
			bad("bind address %q: not an IP address", s.BindAddress)
		}
	}
	if s.UserID < 0 {
		bad("user id %d: must be 0 (root) or a positive uid", s.UserID)
	}
	switch s.Network {
	case "", NetworkBridge, NetworkNone, NetworkInternal, NetworkHost:
	default:
		bad("network %q: use bridge, none, internal or host", s.Network)
	}
	if s.UseHostNetwork && s.Network != "" && s.Network != NetworkHost {
		bad("network %q: use_host_network asks for host", s.Network)
	}
	for _, n := range s.Networks {
		if n == "" || strings.ContainsAny(n, " /") {
			bad("network %q: not a Docker network name", n)
		}
	}
	if s.VSCodePort < 0 || s.VSCodePort > 65535 {
		bad("vscode port %d: use 1-65535, or 0 to allocate one", s.VSCodePort)
	}
	if s.AppPorts < 0 || s.AppPorts > 2 {
		bad("app ports %d: use 0, 1 or 2", s.AppPorts)
	}
	seen := map[int]bool{}
	for _, p := range s.Publish {
		if p < 1 || p > 65535 {
			bad("publish %d: not a port (1-65535)", p)
		}
		if seen[p] {
			bad("publish %d: given twice", p)
		}
		seen[p] = true
	}
	for _, id := range s.GPUs.DeviceIDs {
		if id == "" || strings.Trim(id, "0123456789") != "" {
			bad("gpu device %q: use GPU numbers such as 0 or 1", id)
		}
	}
	if s.Limits.Memory < 0 || s.Limits.NanoCPUs < 0 {
		bad("limits: memory %d and cpus %d must not be negative", s.Limits.Memory, s.Limits.NanoCPUs)
	}
	if s.Timeout < 0 {
		bad("timeout %s: must not be negative", s.Timeout)
	}
	return errors.Join(errs...)
}
