package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// errUnauthorized is a missing or unknown bearer token.
var errUnauthorized = errors.New("missing or invalid bearer token")

// tenantNameRE is what a tenant name may be: it becomes a label value.
var tenantNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// minTokenLen is the shortest clear-text token accepted.
const minTokenLen = 16

// tenant is a configured tenant with its token hash only.
type tenant struct {
	Tenant
	hash [sha256.Size]byte
}

// trusted reports whether the tenant may ask for what reaches the host.
func (t *tenant) trusted() bool { return t.AllowHostAccess }

// tenants authenticates requests.
type tenants struct {
	list  []*tenant
	local *tenant // the tenant of every request when list is empty
}

func newTenants(cfg []Tenant) (*tenants, error) {
	ts := &tenants{}
	if len(cfg) == 0 {
		ts.local = &tenant{Tenant: Tenant{Name: LocalTenant, AllowHostAccess: true, Admin: true}}
		return ts, nil
	}
	names := map[string]bool{}
	hashes := map[[sha256.Size]byte]string{}
	var errs []error
	for i, c := range cfg {
		where := fmt.Sprintf("server.tenants[%d] (%q)", i, c.Name)
		if !tenantNameRE.MatchString(c.Name) {
			errs = append(errs, fmt.Errorf("%s: name: use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit", where))
		}
		if names[c.Name] {
			errs = append(errs, fmt.Errorf("%s: name given twice", where))
		}
		names[c.Name] = true
		t := &tenant{Tenant: c}
		switch {
		case (c.Token == "") == (c.TokenSHA256 == ""):
			errs = append(errs, fmt.Errorf("%s: set exactly one of token and token_sha256", where))
		case c.Token != "":
			if len(c.Token) < minTokenLen {
				errs = append(errs, fmt.Errorf("%s: token: at least %d characters (e.g. `openssl rand -hex 32`)", where, minTokenLen))
			}
			t.hash = sha256.Sum256([]byte(c.Token))
		default:
			b, err := hex.DecodeString(strings.TrimSpace(c.TokenSHA256))
			if err != nil || len(b) != sha256.Size {
				errs = append(errs, fmt.Errorf("%s: token_sha256: want 64 hex digits (`printf %%s TOKEN | sha256sum`)", where))
			}
			copy(t.hash[:], b)
		}
		if other, ok := hashes[t.hash]; ok && t.hash != ([sha256.Size]byte{}) {
			errs = append(errs, fmt.Errorf("%s: same token as tenant %q", where, other))
		}
		hashes[t.hash] = c.Name
		if c.MaxSandboxes < 0 || c.MaxMemory < 0 {
			errs = append(errs, fmt.Errorf("%s: max_sandboxes and max_memory must not be negative", where))
		}
		t.Token = "" // keep only the hash
		ts.list = append(ts.list, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("server config: %w", err)
	}
	return ts, nil
}

// open reports whether no token is configured (local mode).
func (ts *tenants) open() bool { return ts.local != nil }

func (ts *tenants) names() []string {
	n := make([]string, len(ts.list))
	for i, t := range ts.list {
		n[i] = t.Name
	}
	return n
}

// authenticate finds the tenant of r's bearer token. Every configured hash
// is compared, in constant time, so timing tells nothing about the tokens.
func (ts *tenants) authenticate(r *http.Request) (*tenant, error) {
	if ts.local != nil {
		return ts.local, nil
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, errUnauthorized
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var found *tenant
	for _, t := range ts.list {
		if subtle.ConstantTimeCompare(h[:], t.hash[:]) == 1 {
			found = t
		}
	}
	if found == nil {
		return nil, errUnauthorized
	}
	return found, nil
}

type tenantKey struct{}

func withTenant(ctx context.Context, t *tenant) context.Context {
	return context.WithValue(ctx, tenantKey{}, t)
}

// tenantOf is the request's tenant, set by the middleware.
func tenantOf(r *http.Request) *tenant {
	t, _ := r.Context().Value(tenantKey{}).(*tenant)
	return t
}
