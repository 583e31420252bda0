package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
)

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if s.streams.Err() != nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// notFound is the answer for a reference that names no sandbox of the
// tenant: the same whether it is absent or another tenant's.
func notFound(ref string) error { return fmt.Errorf("%w: %q", sandbox.ErrNotFound, ref) }

// resolve finds the tenant's sandbox that ref names: its id, a unique
// prefix of its id, or its name, like the CLI. Another tenant's sandbox is
// not found. With fallback, a reference the view does not know is looked
// up in the runtime too (a create answered a moment ago).
func (s *Server) resolve(ctx context.Context, t *tenant, ref string, fallback bool) (sandbox.Sandbox, error) {
	if ref == "" {
		return sandbox.Sandbox{}, notFound(ref)
	}
	if sb, ok := s.view.Get(ref); ok && sb.ID == ref {
		switch {
		case sb.Owner == t.Name:
			return sb, nil
		case sb.Owner != sandbox.OwnerPool || !fallback:
			return sandbox.Sandbox{}, notFound(ref)
		}
		// A pooled sandbox claimed a moment ago: the view has yet to see
		// the claim (its rename event); the runtime has it.
	}
	var byPrefix []sandbox.Sandbox
	for _, sb := range s.view.List(monitor.Filter{Owner: t.Name}) {
		if sb.ID == ref || sb.Name == ref {
			return sb, nil
		}
		if strings.HasPrefix(sb.ID, ref) {
			byPrefix = append(byPrefix, sb)
		}
	}
	switch len(byPrefix) {
	case 1:
		return byPrefix[0], nil
	case 0:
	default:
		ids := make([]string, len(byPrefix))
		for i, sb := range byPrefix {
			ids[i] = sb.ID
		}
		return sandbox.Sandbox{}, fmt.Errorf("%w: %q matches sandboxes %s", sandbox.ErrAmbiguous, ref, strings.Join(ids, ", "))
	}
	if !fallback {
		return sandbox.Sandbox{}, notFound(ref)
	}
	sb, err := s.rt.Get(ctx, ref)
	switch {
	case err == nil && sb.Owner == t.Name:
		return sb, nil
	case err == nil, errors.Is(err, sandbox.ErrNotFound), errors.Is(err, sandbox.ErrAmbiguous):
		return sandbox.Sandbox{}, notFound(ref)
	}
	return sandbox.Sandbox{}, err
}

// sandboxFor resolves the request's {id} and marks the sandbox active.
func (s *Server) sandboxFor(r *http.Request) (*tenant, sandbox.Sandbox, error) {
	t := tenantOf(r)
	sb, err := s.resolve(r.Context(), t, r.PathValue("id"), true)
	if err != nil {
		return t, sandbox.Sandbox{}, err
	}
	s.view.Touch(sb.ID)
	return t, sb, nil
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	t := tenantOf(r)
	if s.streams.Err() != nil {
		s.writeError(w, r, errShuttingDown)
		return
	}
	var req client.CreateRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	spec, err := s.specFor(t, req)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The caller's env reaches every command the sandbox will run: it is
	// judged as an env action (the record names no sandbox yet).
	if pending := (sandbox.Sandbox{SecurityPolicy: spec.SecurityPolicy}); len(req.Env) > 0 && s.policyFor(t, pending) != PolicyOff {
		if _, ok := s.guard(w, r, pending, s.judgeEnv(req.Env)); !ok {
			return
		}
	}
	res, err := s.quota.reserve(s.view, t, spec.Limits.Memory)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	start := time.Now()
	sb, err := s.rt.Create(r.Context(), spec)
	if err != nil {
		s.quota.release(res)
		s.writeError(w, r, err)
		return
	}
	s.quota.settle(res, sb.ID)
	s.metrics.create.Observe(time.Since(start).Seconds())
	s.log.Info("sandbox created", "id", sb.ID, "tenant", t.Name, "duration", time.Since(start))
	s.view.Touch(sb.ID)
	s.view.Publish(monitor.Event{Type: monitor.EventReady, ID: sb.ID, Owner: sb.Owner, Time: time.Now().UTC(), Sandbox: &sb})
	w.Header().Set("Location", client.SandboxPath(sb.ID, ""))
	writeJSON(w, http.StatusCreated, sb)
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	_, sb, err := s.sandboxFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, sb)
}

// checkQuery refuses query parameters other than known ones, and known
// ones given twice (except repeatable ones), naming them.
func checkQuery(q url.Values, repeatable []string, known ...string) error {
	for k, vs := range q {
		if !slices.Contains(known, k) && !slices.Contains(repeatable, k) {
			return badRequestf("unknown query parameter %q", k)
		}
		if len(vs) > 1 && !slices.Contains(repeatable, k) {
			return badRequestf("query parameter %q given %d times", k, len(vs))
		}
	}
	return nil
}

// listParams are GET /api/v1/sandboxes's query.
type listParams struct {
	filter monitor.Filter
	limit  int
	after  *cursor
}

func parseListParams(r *http.Request, owner string) (listParams, error) {
	q := r.URL.Query()
	if err := checkQuery(q, []string{"label"}, "status", "page_id", "limit"); err != nil {
		return listParams{}, err
	}
	p := listParams{filter: monitor.Filter{Owner: owner}, limit: client.DefaultListLimit}
	if st := q.Get("status"); st != "" {
		status := sandbox.Status(strings.ToUpper(st))
		switch status {
		case sandbox.StatusStarting, sandbox.StatusRunning, sandbox.StatusPaused, sandbox.StatusMissing, sandbox.StatusError:
		default:
			return p, badRequestf("status %q: use STARTING, RUNNING, PAUSED, MISSING or ERROR", st)
		}
		p.filter.Status = status
	}
	for _, kv := range q["label"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return p, badRequestf("label %q: expected KEY=VALUE", kv)
		}
		if p.filter.Label == nil {
			p.filter.Label = map[string]string{}
		}
		p.filter.Label[k] = v
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > client.MaxListLimit {
			return p, badRequestf("limit %q: a number from 1 to %d", l, client.MaxListLimit)
		}
		p.limit = n
	}
	if id := q.Get("page_id"); id != "" {
		c, err := parseCursor(id)
		if err != nil {
			return p, badRequestf("page_id %q: not a page id this server gave", id)
		}
		p.after = &c
	}
	return p, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	t := tenantOf(r)
	p, err := parseListParams(r, t.Name)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	list := s.view.List(p.filter)
	// Newest first; the id breaks ties, so pages are stable.
	slices.SortStableFunc(list, compareNewestFirst)
	i := 0
	if p.after != nil {
		i, _ = slices.BinarySearchFunc(list, *p.after, func(sb sandbox.Sandbox, c cursor) int {
			if n := compareNewestFirst(sb, sandbox.Sandbox{ID: c.id, CreatedAt: c.created}); n != 0 {
				return n
			}
			return -1 // the cursor's own item comes before the page
		})
	}
	page := list[i:min(len(list), i+p.limit)]
	resp := client.ListResponse{Items: page}
	if resp.Items == nil {
		resp.Items = []sandbox.Sandbox{}
	}
	if i+p.limit < len(list) {
		last := page[len(page)-1]
		resp.NextPageID = cursor{created: last.CreatedAt, id: last.ID}.String()
	}
	writeJSON(w, http.StatusOK, resp)
}

func compareNewestFirst(a, b sandbox.Sandbox) int {
	if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.ID, b.ID)
}

// cursor is a page id: the last item of the previous page.
type cursor struct {
	created time.Time
	id      string
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.created.UnixNano(), 10) + "." + c.id))
}

func parseCursor(s string) (cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, err
	}
	ns, id, ok := strings.Cut(string(b), ".")
	n, err := strconv.ParseInt(ns, 10, 64)
	if !ok || err != nil || id == "" {
		return cursor{}, errors.New("malformed page id")
	}
	return cursor{created: time.Unix(0, n).UTC(), id: id}, nil
}

func (s *Server) handleBatchGet(w http.ResponseWriter, r *http.Request) {
	t := tenantOf(r)
	var ids []string
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		if err := checkQuery(q, []string{"ids"}); err != nil {
			s.writeError(w, r, err)
			return
		}
		for _, v := range q["ids"] {
			for id := range strings.SplitSeq(v, ",") {
				if id != "" {
					ids = append(ids, id)
				}
			}
		}
	} else {
		var req client.BatchGetRequest
		if err := decodeJSON(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		ids = req.IDs
	}
	if len(ids) > client.MaxListLimit {
		s.writeError(w, r, badRequestf("ids: %d given, at most %d", len(ids), client.MaxListLimit))
		return
	}
	resp := client.BatchGetResponse{Items: make([]*sandbox.Sandbox, len(ids))}
	for i, id := range ids {
		sb, err := s.resolve(r.Context(), t, id, false)
		switch {
		case err == nil:
			resp.Items[i] = &sb
		case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, sandbox.ErrAmbiguous):
		default:
			s.writeError(w, r, err)
			return
		}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	_, sb, err := s.sandboxFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.rt.Remove(r.Context(), sb.ID); err != nil {
		s.writeError(w, r, err)
		return
	}
	s.view.Forget(sb.ID)
	s.agents.forget(sb.ID)
	s.quota.forget(sb.ID)
	w.WriteHeader(http.StatusNoContent)
}

// action runs one state change (pause, resume, stop) and answers the
// sandbox's record after it.
func (s *Server) action(w http.ResponseWriter, r *http.Request, op func(context.Context, string) (sandbox.Sandbox, error), took func(time.Duration)) (sandbox.Sandbox, bool) {
	_, sb, err := s.sandboxFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return sandbox.Sandbox{}, false
	}
	start := time.Now()
	after, err := op(r.Context(), sb.ID)
	if err != nil {
		s.writeError(w, r, err)
		return sandbox.Sandbox{}, false
	}
	if took != nil {
		took(time.Since(start))
	}
	writeJSON(w, http.StatusOK, after)
	return after, true
}

func (s *Server) handlePause(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, s.rt.Pause, func(d time.Duration) { s.metrics.pause.Observe(d.Seconds()) })
}

func (s *Server) handleResume(w http.ResponseWriter, r *http.Request) {
	if sb, ok := s.action(w, r, s.rt.Resume, func(d time.Duration) { s.metrics.resume.Observe(d.Seconds()) }); ok {
		s.view.Publish(monitor.Event{Type: monitor.EventReady, ID: sb.ID, Owner: sb.Owner, Time: time.Now().UTC(),
			Reason: "resumed through the API", Sandbox: &sb})
	}
}

func (s *Server) handleStop(w http.ResponseWriter, r *http.Request) {
	s.action(w, r, s.rt.Stop, nil)
}
