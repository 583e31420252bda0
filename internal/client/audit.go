package client

import (
	"context"
	"net/url"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/audit"
)

// PathAudit is GET /api/v1/audit: the audit trail, filtered by the tenant.
const PathAudit = "/api/v1/audit"

// CodeDenied is the code of a 403 answer to an action the security policy
// refused; the body is a DeniedError.
const CodeDenied = "denied"

// DeniedError is the body of a 403 "denied" answer: the action was not
// run (nor forwarded to the sandbox).
type DeniedError struct {
	Code    string `json:"code"` // CodeDenied
	Message string `json:"message"`
	RuleID  string `json:"rule_id"` // the first HIGH (or deciding) rule
	Level   string `json:"level"`   // LOW, MEDIUM or HIGH
	// Rules are every rule that matched.
	Rules []string `json:"rules,omitempty"`
}

// PTYDeniedType is the type of the text message a terminal websocket
// proxied by berth serve sends when it refuses a typed line.
const PTYDeniedType = "denied"

// PTYDenied is that message: the line was erased, not run.
type PTYDenied struct {
	Type string `json:"type"` // PTYDeniedType
	DeniedError
}

// AuditRecord is one action of the audit trail.
type AuditRecord = audit.Record

// AuditResponse is the answer of GET /api/v1/audit: oldest first.
type AuditResponse struct {
	Items []AuditRecord `json:"items"`
}

// AuditAllTenants is the Tenant of AuditOptions that asks for every
// tenant's records (admin tenants only).
const AuditAllTenants = "*"

// AuditOptions filter GET /api/v1/audit.
type AuditOptions struct {
	Sandbox string    // a sandbox id; "" = every sandbox of the tenant
	Since   time.Time // zero = from the start
	Limit   int       // the newest Limit records; 0 = the server's default
	// Tenant is whose records: "" = the caller's own; another tenant's
	// name, or AuditAllTenants, needs an admin tenant (else 403).
	Tenant string
}

// Audit returns the audit records of the caller's tenant (or, for an
// admin tenant, of opts.Tenant).
func (c *Client) Audit(ctx context.Context, opts AuditOptions) ([]AuditRecord, error) {
	q := url.Values{}
	if opts.Sandbox != "" {
		q.Set("sandbox", opts.Sandbox)
	}
	if !opts.Since.IsZero() {
		q.Set("since", opts.Since.UTC().Format(time.RFC3339Nano))
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	if opts.Tenant != "" {
		q.Set("tenant", opts.Tenant)
	}
	path := PathAudit
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out AuditResponse
	if err := c.call(ctx, "GET", path, nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// PathApprovals lists (GET) the actions waiting for approval under the
// "confirm" policy; POST PathApprovals/{id} with an ApprovalRequest
// answers one.
const PathApprovals = "/api/v1/approvals"

// Approval is an action waiting for a person's approval.
type Approval struct {
	ID      string       `json:"id"` // the audit record's id
	Time    time.Time    `json:"time"`
	Expires time.Time    `json:"expires"` // refused (timed_out) then
	Tenant  string       `json:"tenant"`
	Sandbox string       `json:"sandbox"`
	Action  audit.Action `json:"action"`
	What    string       `json:"what"`
	Level   string       `json:"level"`
	Rules   []string     `json:"rules,omitempty"`
}

// ApprovalList is the answer of GET /api/v1/approvals.
type ApprovalList struct {
	Items []Approval `json:"items"`
}

// Decisions of an ApprovalRequest.
const (
	Approve = "approve"
	Deny    = "deny"
)

// ApprovalRequest is the body of POST /api/v1/approvals/{id}.
type ApprovalRequest struct {
	Decision string `json:"decision"` // Approve or Deny
}

// Approvals lists the tenant's actions waiting for approval.
func (c *Client) Approvals(ctx context.Context) ([]Approval, error) {
	var out ApprovalList
	if err := c.call(ctx, "GET", PathApprovals, nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// Answer approves (approve true) or denies a waiting action.
func (c *Client) Answer(ctx context.Context, id string, approve bool) error {
	d := Deny
	if approve {
		d = Approve
	}
	return c.call(ctx, "POST", PathApprovals+"/"+escapeSegment(id), ApprovalRequest{Decision: d}, nil)
}
