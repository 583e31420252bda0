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
	LabelAgentPort    = "berth.port.agent"
	LabelUserID       = "berth.user-id"
	// LabelLabelKeys lists the caller's label keys (comma-separated), so the
	// caller's labels can be told from those the image brings.
	LabelLabelKeys = "berth.label-keys"
)

var reservedLabels = map[string]bool{
	LabelID: true, LabelName: true, LabelOwner: true, LabelCreatedBy: true,
	LabelImage: true, LabelRuntimeImage: true, LabelAgentPort: true, LabelUserID: true,
	LabelLabelKeys: true,
}

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
	if s.Timeout < 0 {
		bad("timeout %s: must not be negative", s.Timeout)
	}
	return errors.Join(errs...)
}
