package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
)

// DefaultApprovalTimeout is how long an action waits for approval under
// PolicyConfirm before it is refused.
const DefaultApprovalTimeout = 2 * time.Minute

// maxPending bounds the actions waiting for approval at once; past it,
// more are refused at once.
const maxPending = 1024

// pending is an action waiting for a person's approval.
type pending struct {
	info   client.Approval
	answer chan bool // true: approved; buffered, answered once
}

// approvals holds the actions waiting under PolicyConfirm.
type approvals struct {
	mu   sync.Mutex
	byID map[string]*pending
}

func newApprovals() *approvals { return &approvals{byID: map[string]*pending{}} }

func (a *approvals) add(p *pending) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.byID) >= maxPending {
		return false
	}
	a.byID[p.info.ID] = p
	return true
}

func (a *approvals) remove(id string) {
	a.mu.Lock()
	delete(a.byID, id)
	a.mu.Unlock()
}

// answer delivers a decision to the tenant's pending action id.
func (a *approvals) answer(tenant, id string, approve bool) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	p, ok := a.byID[id]
	if !ok || p.info.Tenant != tenant {
		return false
	}
	delete(a.byID, id)
	p.answer <- approve
	return true
}

func (a *approvals) list(tenant string) []client.Approval {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := []client.Approval{}
	for _, p := range a.byID {
		if p.info.Tenant == tenant {
			out = append(out, p.info)
		}
	}
	slices.SortFunc(out, func(x, y client.Approval) int { return x.Time.Compare(y.Time) })
	return out
}

// await holds a pending action until it is approved, denied, times out,
// the caller goes away or the server shuts down; it returns the final
// decision (Approved, Denied or TimedOut).
func (s *Server) await(ctx context.Context, rec audit.Record) (audit.Decision, string) {
	p := &pending{answer: make(chan bool, 1), info: client.Approval{ID: rec.ID, Time: rec.Time, Tenant: rec.Tenant,
		Sandbox: rec.Sandbox, Action: rec.Action, What: rec.What, Level: rec.Level, Rules: rec.Rules}}
	timeout := s.opts.Config.Security.ApprovalTimeout
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	p.info.Expires = rec.Time.Add(timeout)
	if !s.approvals.add(p) {
		return audit.Denied, "too many actions are waiting for approval"
	}
	defer s.approvals.remove(rec.ID)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case ok := <-p.answer:
		if ok {
			return audit.Approved, ""
		}
		return audit.Denied, "denied by a person"
	case <-timer.C:
		return audit.TimedOut, fmt.Sprintf("no approval within %s", timeout)
	case <-ctx.Done():
		return audit.TimedOut, "the caller went away before an approval"
	case <-s.streams.Done():
		return audit.TimedOut, "the server is shutting down"
	}
}

// handleApprovals answers GET /api/v1/approvals: the tenant's actions
// waiting for approval, oldest first.
func (s *Server) handleApprovals(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.ApprovalList{Items: s.approvals.list(tenantOf(r).Name)})
}

// handleApprove answers POST /api/v1/approvals/{id} {"decision":"approve"|"deny"}.
func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	var req client.ApprovalRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	var approve bool
	switch req.Decision {
	case client.Approve:
		approve = true
	case client.Deny:
	default:
		s.writeError(w, r, badRequestf("decision %q: want %q or %q", req.Decision, client.Approve, client.Deny))
		return
	}
	id := r.PathValue("id")
	if !s.approvals.answer(tenantOf(r).Name, id, approve) {
		s.writeError(w, r, fmt.Errorf("%w: no action %q is waiting for approval", errNoApproval, id))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// stalePendingTail is how much of the trail's end a starting server reads
// for actions left pending.
const stalePendingTail = 8 << 20

// endStalePending completes, as timed out, the actions the trail shows
// still pending: they waited for approval in a server that is gone (pending
// actions live in its memory), and its caller was refused when it went.
func (s *Server) endStalePending() {
	if s.opts.Audit == nil {
		return
	}
	// An action waits at most its approval timeout: its records are near
	// the end, and a server's start does not read a long trail whole.
	recs, err := s.opts.Audit.Query(audit.Query{Tail: stalePendingTail})
	if err != nil {
		s.log.Warn("audit trail: cannot look for actions left pending", "err", err)
		return
	}
	for _, r := range recs {
		if r.Decision != audit.Pending {
			continue
		}
		s.record(audit.Record{ID: r.ID, Time: time.Now().UTC(), Tenant: r.Tenant, Sandbox: r.Sandbox, Decision: audit.TimedOut})
		s.log.Info("audit trail: an action left pending by an earlier server ends as timed out", "audit_id", r.ID, "sandbox", r.Sandbox)
	}
}
