package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/security"
)

// Security policies: what the server does with an agent's action once the
// analyzer (internal/security) has judged it. From the loosest to the
// strictest: off, audit, confirm, deny.
const (
	PolicyOff   = sandbox.PolicyOff   // no analysis, no audit record
	PolicyAudit = sandbox.PolicyAudit // judge and record every action; run it
	PolicyDeny  = sandbox.PolicyDeny  // as audit, but refuse HIGH (and MEDIUM with medium = "deny")
	// PolicyConfirm is as deny, but what deny refuses waits for a person's
	// approval (POST /api/v1/approvals/{id}); no answer in time refuses it.
	PolicyConfirm = sandbox.PolicyConfirm
)

// strictness orders the policies: a sandbox's own may only tighten its
// tenant's.
var strictness = map[string]int{PolicyOff: 0, PolicyAudit: 1, PolicyConfirm: 2, PolicyDeny: 3}

// stricter is the stricter of two policies ("" is neither).
func stricter(a, b string) string {
	if b != "" && (a == "" || strictness[b] > strictness[a]) {
		return b
	}
	return a
}

// SecurityConfig is the [security] table: the default policy, and what
// PolicyDeny does with MEDIUM.
type SecurityConfig struct {
	Policy string // PolicyOff, PolicyAudit (default) or PolicyDeny
	// Medium is "allow" (default: run and record as audited) or "deny"
	// (refused under PolicyDeny, like HIGH).
	Medium string
	// ApprovalTimeout is how long an action waits for approval under
	// PolicyConfirm; default DefaultApprovalTimeout.
	ApprovalTimeout time.Duration
}

func checkPolicy(p string) error {
	switch p {
	case "", PolicyOff, PolicyAudit, PolicyDeny, PolicyConfirm:
		return nil
	}
	return fmt.Errorf("server: security policy %q: want %q, %q, %q or %q", p, PolicyOff, PolicyAudit, PolicyDeny, PolicyConfirm)
}

func (c SecurityConfig) check() error {
	if err := checkPolicy(c.Policy); err != nil {
		return err
	}
	switch c.Medium {
	case "", "allow", "deny":
		return nil
	}
	return fmt.Errorf(`server: security medium %q: want "allow" or "deny"`, c.Medium)
}

// policyFor is the policy for actions of tenant t in sandbox sb: the
// stricter of the tenant's (its own, else the server's) and the sandbox's
// own (label berth.security-policy), which can only tighten it.
func (s *Server) policyFor(t *tenant, sb sandbox.Sandbox) string {
	return stricter(s.tenantPolicy(t), sb.SecurityPolicy)
}

// tenantPolicy is the policy of tenant t's sandboxes that ask for none:
// the tenant's own, else the server's, else PolicyAudit.
func (s *Server) tenantPolicy(t *tenant) string {
	if t != nil && t.SecurityPolicy != "" {
		return t.SecurityPolicy
	}
	if s.opts.Config.Security.Policy != "" {
		return s.opts.Config.Security.Policy
	}
	return PolicyAudit
}

// checkSandboxPolicy checks the security_policy of a create by tenant t:
// one of the policies, and not looser than the tenant's.
func (s *Server) checkSandboxPolicy(t *tenant, p string) error {
	if p == "" {
		return nil
	}
	if !sandbox.ValidPolicy(p) {
		return badRequestf("security_policy %q: use %s, %s, %s or %s", p, PolicyOff, PolicyAudit, PolicyConfirm, PolicyDeny)
	}
	if tp := s.tenantPolicy(t); stricter(tp, p) != p {
		return badRequestf("security_policy %q is looser than the policy of tenant %q (%s): a sandbox's policy may only tighten its tenant's "+
			"(from the loosest: off, audit, confirm, deny)", p, t.Name, tp)
	}
	return nil
}

// decide maps a level to a decision under policy.
func (s *Server) decide(policy string, level security.Level) audit.Decision {
	switch {
	case policy == PolicyOff || level == security.LevelLow:
		return audit.Allowed
	case policy == PolicyDeny && level == security.LevelHigh:
		return audit.Denied
	case policy == PolicyDeny && s.opts.Config.Security.Medium == "deny":
		return audit.Denied
	case policy == PolicyConfirm && (level == security.LevelHigh || s.opts.Config.Security.Medium == "deny"):
		return audit.Pending
	}
	return audit.Audited
}

// act is one action of an agent, before it runs.
type act struct {
	kind audit.Action
	what string
	as   security.Assessment
	// answerEnds: the agent's answer ends the action (a file operation, a
	// session started, an environment set); a 2xx completes its record
	// with exit code 0.
	answerEnds bool
	// session: the shell session a command runs in, whose directory its
	// exit event tells.
	session string
}

// guarded is an action that was allowed, to complete its record with.
type guarded struct {
	rec   audit.Record
	start time.Time
}

// guard judges the action, records it, and, when the policy refuses it,
// answers 403 "denied" and returns ok false: the caller must not run it.
// With the policy off it only returns ok.
func (s *Server) guard(w http.ResponseWriter, r *http.Request, sb sandbox.Sandbox, a act) (*guarded, bool) {
	g, refused := s.judge(r.Context(), tenantOf(r), sb, a)
	if refused != nil {
		s.metrics.errors.WithLabelValues(client.CodeDenied).Inc()
		writeJSON(w, http.StatusForbidden, refused)
		return nil, false
	}
	return g, true
}

// judge decides an action of tenant t in sandbox sb under its policy: it
// records it, waits for an approval under PolicyConfirm, and returns
// either the allowed action (nil with the policy off) or, when it must not
// run, the answer for the caller.
func (s *Server) judge(ctx context.Context, t *tenant, sb sandbox.Sandbox, a act) (*guarded, *client.DeniedError) {
	policy := s.policyFor(t, sb)
	if policy == PolicyOff {
		return nil, nil
	}
	rec := audit.Record{ID: newRecordID(), Time: time.Now().UTC(), Sandbox: sb.ID, Action: a.kind,
		What: a.what, Level: a.as.Level.String(), Decision: s.decide(policy, a.as.Level)}
	if t != nil {
		rec.Tenant = t.Name
	}
	for _, f := range a.as.Findings {
		rec.Rules = append(rec.Rules, f.RuleID)
	}
	s.record(rec)
	why := ""
	if rec.Decision == audit.Pending {
		// The record is on disk as pending; its completion says how it ended.
		rec.Decision, why = s.await(ctx, rec)
		s.record(audit.Record{ID: rec.ID, Time: time.Now().UTC(), Tenant: rec.Tenant, Sandbox: rec.Sandbox, Decision: rec.Decision})
		s.publish(rec)
	}
	if rec.Decision != audit.Denied && rec.Decision != audit.TimedOut {
		return &guarded{rec: rec, start: time.Now()}, nil
	}
	if why != "" {
		why = " (" + why + ")"
	}
	body := &client.DeniedError{Code: client.CodeDenied, Level: rec.Level, Rules: rec.Rules,
		Message: fmt.Sprintf("refused by the security policy (%s)%s: %s", policy, why, a.what)}
	for _, f := range a.as.Findings {
		if f.Level == a.as.Level {
			body.RuleID = f.RuleID
			body.Message = fmt.Sprintf("refused by the security policy (%s)%s: %s: %s [%s]", policy, why, f.Command, f.Message, f.RuleID)
			break
		}
	}
	return nil, body
}

// done completes an allowed action's record with its exit code.
func (s *Server) done(g *guarded, exitCode int) {
	if g == nil {
		return
	}
	s.complete(g, audit.Record{ExitCode: &exitCode}, time.Since(g.start))
}

// record appends to the trail (if any), logs, and publishes an "audit"
// event on the view for the record's tenant.
func (s *Server) record(rec audit.Record) {
	if rec.Action != "" {
		lvl := s.log.Debug
		if rec.Decision == audit.Denied || rec.Decision == audit.Audited {
			lvl = s.log.Info
		}
		lvl("audit", "tenant", rec.Tenant, "sandbox", rec.Sandbox, "action", rec.Action, "what", rec.What,
			"level", rec.Level, "rules", rec.Rules, "decision", rec.Decision)
		if rec.Decision != audit.Allowed {
			s.publish(rec)
		}
	}
	if s.opts.Audit == nil {
		return
	}
	// A decision that lets a LOW action run, and the completion of an
	// action (its exit), reach the disk within audit.LazySync; any other
	// decision before the action runs or is refused.
	appendRec := s.opts.Audit.Append
	if rec.Decision == "" || rec.Decision == audit.Allowed {
		appendRec = s.opts.Audit.AppendLazy
	}
	if err := appendRec(rec); err != nil {
		s.log.Error("audit trail: cannot record an action", "err", err, "sandbox", rec.Sandbox, "action", rec.Action)
	}
}

// publish sends an "audit" event for rec to its tenant's event streams;
// the reason is "DECISION LEVEL ACTION [ID]: WHAT" (the id is what an
// approval names).
func (s *Server) publish(rec audit.Record) {
	s.view.Publish(monitor.Event{Type: "audit", ID: rec.Sandbox, Owner: rec.Tenant, Time: time.Now().UTC(),
		Reason: fmt.Sprintf("%s %s %s [%s]: %s", rec.Decision, rec.Level, rec.Action, rec.ID, truncate(rec.What, 200))})
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func newRecordID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// judgeCommand judges an exec: a shell string or an argv.
func (s *Server) judgeCommand(kind audit.Action, command string, argv []string) act {
	return s.judgeCommandIn(kind, command, argv, "")
}

// judgeCommandIn is judgeCommand for a command run in directory cwd ("":
// not known).
func (s *Server) judgeCommandIn(kind audit.Action, command string, argv []string, cwd string) act {
	if command != "" {
		return act{kind: kind, what: command, as: s.analyzer.CommandIn(command, cwd)}
	}
	return act{kind: kind, what: agentapi.ShellJoin(argv), as: s.analyzer.Argv(argv)}
}

// judgeCommandEnv judges an exec that adds env to the command's
// environment: the command and the environment together (the findings of
// both, the higher level). The record's what is the command preceded by
// the variables that matched a rule, as NAME=VALUE (the others are left
// out: environments carry secrets).
func (s *Server) judgeCommandEnv(kind audit.Action, command string, argv []string, env map[string]string) act {
	return s.withEnv(s.judgeCommand(kind, command, argv), env)
}

// judgeSessionCommand judges command of shell session session in sandbox
// sandboxID, in the directory its last command left it, with env (the
// shell's, when this call starts it).
func (s *Server) judgeSessionCommand(sandboxID, session, command string, env map[string]string) act {
	a := s.withEnv(s.judgeCommandIn(audit.ActionSession, command, nil, s.sessionCwds.get(sandboxID, session)), env)
	a.session = session
	return a
}

// withEnv adds to a the judgement of the env it runs with.
func (s *Server) withEnv(a act, env map[string]string) act {
	if len(env) == 0 {
		return a
	}
	es := s.analyzer.Env(env)
	a.as.Findings = append(a.as.Findings, es.Findings...)
	a.as.Level = max(a.as.Level, es.Level)
	if w := envWhat(env, es, false); w != "" {
		a.what = w + " " + a.what
	}
	return a
}

// judgeEnv judges the environment set for every later command of a
// sandbox (POST /api/v1/meta). The record's what names every variable,
// with the value of those that matched a rule.
func (s *Server) judgeEnv(env map[string]string) act {
	es := s.analyzer.Env(env)
	return act{kind: audit.ActionEnv, what: envWhat(env, es, true), as: es, answerEnds: true}
}

// maxEnvValue is how much of a variable's value a record shows.
const maxEnvValue = 100

// envWhat shows the variables of env that a finding of as names, as
// NAME=VALUE (the value shell-quoted, cut at maxEnvValue bytes), in the
// order of their names; with all, the others too, as NAME=… (their values
// are not recorded: environments carry tokens and passwords).
func envWhat(env map[string]string, as security.Assessment, all bool) string {
	matched := make(map[string]bool, len(as.Findings))
	for _, f := range as.Findings {
		if f.Env != "" {
			matched[f.Env] = true
		}
	}
	names := make([]string, 0, len(env))
	for name := range env {
		if all || matched[name] {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		if !matched[name] {
			parts = append(parts, name+"=…")
			continue
		}
		v := env[name]
		cut := len(v) > maxEnvValue
		if cut {
			n := maxEnvValue
			for n > 0 && !utf8.RuneStart(v[n]) {
				n--
			}
			v = v[:n]
		}
		v = agentapi.ShellQuote(v)
		if cut {
			v += "…"
		}
		parts = append(parts, name+"="+v)
	}
	return strings.Join(parts, " ")
}

// judgeFile judges a files API operation on paths (from and to, for a move).
func (s *Server) judgeFile(kind audit.Action, op security.FileOp, paths ...string) act {
	a := act{kind: kind, what: strings.Join(paths, " -> "), answerEnds: true}
	for _, p := range paths {
		as := s.analyzer.File(op, p)
		a.as.Findings = append(a.as.Findings, as.Findings...)
		a.as.Level = max(a.as.Level, as.Level)
	}
	return a
}

// sessionStart is what a record shows of a session started with an
// environment (no command): "(new session NAME[, shell SHELL])".
func sessionStart(name, shell string) string {
	if shell != "" {
		return fmt.Sprintf("(new session %s, shell %s)", name, agentapi.ShellQuote(shell))
	}
	return fmt.Sprintf("(new session %s)", name)
}

// judgeAgentCall finds, in a call to the agent proxied by the server, the
// action it asks for: an exec, session start (with an environment),
// session exec or input, process start, file write, move or removal, or
// the sandbox's environment set (meta); the environment a call carries is
// judged with its command. It reads (and puts back) the JSON body of those
// calls; other calls are no action (ok true, a.kind ""). A body that does
// not decode is a bad request: it is not forwarded.
func (s *Server) judgeAgentCall(w http.ResponseWriter, r *http.Request, sandboxID, rest string) (act, error) {
	p, err := url.PathUnescape(rest)
	if err != nil {
		return act{}, badRequestf("agent path %q: %v", rest, err)
	}
	p = "/" + strings.Trim(p, "/")
	seg := strings.Split(strings.TrimPrefix(p, "/"), "/")
	q := r.URL.Query()
	body := func(v any) error {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, client.MaxRequestBytes))
		if err != nil {
			return fmt.Errorf("read the agent call's body: %w", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		r.ContentLength = int64(len(b))
		r.Header.Set("Content-Length", strconv.Itoa(len(b)))
		r.Header.Del("Transfer-Encoding")
		r.TransferEncoding = nil
		if err := json.Unmarshal(b, v); err != nil {
			return badRequestf("agent call %s %s: invalid JSON body: %v", r.Method, p, err)
		}
		return nil
	}
	switch {
	case r.Method == http.MethodPost && p == agentapi.PathExec:
		var req agentapi.ExecRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		return s.judgeCommandEnv(audit.ActionExec, req.Command, req.Argv, req.Env), nil
	case r.Method == http.MethodPost && p == agentapi.PathProcesses:
		var req agentapi.ProcessRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		return s.judgeCommandEnv(audit.ActionProcess, req.Command, req.Argv, req.Env), nil
	case r.Method == http.MethodPost && p == agentapi.PathSessions:
		var req agentapi.SessionCreateRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		if len(req.Env) == 0 {
			return act{}, nil // a shell with the sandbox's environment: nothing to judge
		}
		es := s.analyzer.Env(req.Env)
		what := strings.TrimSpace(envWhat(req.Env, es, false) + " " + sessionStart(req.Name, req.Shell))
		return act{kind: audit.ActionSession, what: what, as: es, answerEnds: true}, nil
	case r.Method == http.MethodPost && len(seg) == 5 && seg[2] == "sessions" && seg[4] == "exec" && strings.HasPrefix(p, "/api/v1/"):
		var req agentapi.SessionExecRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		if req.Command == "" {
			return act{}, nil // reads more output
		}
		var env map[string]string // for the shell, if this call starts it
		if req.Create != nil {
			env = req.Create.Env
		}
		return s.judgeSessionCommand(sandboxID, seg[3], req.Command, env), nil
	case r.Method == http.MethodPost && p == agentapi.PathMeta:
		var req agentapi.MetaRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		return s.judgeEnv(req.Env), nil
	case r.Method == http.MethodPost && len(seg) == 5 && seg[2] == "sessions" && seg[4] == "input" && strings.HasPrefix(p, "/api/v1/"):
		var req agentapi.SessionInputRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		if req.Text == "" {
			return act{}, nil
		}
		return s.judgeCommand(audit.ActionPTYInput, req.Text, nil), nil
	case r.Method == http.MethodPut && (p == agentapi.PathFiles || p == agentapi.PathFilesTar):
		return s.judgeFile(audit.ActionFileWrite, security.FileWrite, q.Get(agentapi.QueryPath)), nil
	case r.Method == http.MethodDelete && p == agentapi.PathFiles:
		return s.judgeFile(audit.ActionFileRemove, security.FileRemove, q.Get(agentapi.QueryPath)), nil
	case r.Method == http.MethodPost && p == agentapi.PathFilesMove:
		var req agentapi.MoveRequest
		if err := body(&req); err != nil {
			return act{}, err
		}
		return s.judgeFile(audit.ActionFileMove, security.FileMove, req.From, req.To), nil
	}
	return act{}, nil
}

// handleAudit answers GET /api/v1/audit?sandbox=&since=&limit=&tenant=:
// the tenant's records (an admin's: those of tenant, or every tenant's
// with "*"), oldest first.
func (s *Server) handleAudit(w http.ResponseWriter, r *http.Request) {
	t := tenantOf(r)
	q := r.URL.Query()
	if err := checkQuery(q, nil, "sandbox", "since", "limit", "tenant"); err != nil {
		s.writeError(w, r, err)
		return
	}
	who, err := auditTenant(t, q.Get("tenant"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	aq := audit.Query{Tenant: who, Sandbox: q.Get("sandbox"), Limit: 1000}
	if aq.Sandbox != "" {
		// A live sandbox may be named by prefix or name; a gone one by its id.
		if sb, err := s.resolve(r.Context(), t, aq.Sandbox, false); err == nil {
			aq.Sandbox = sb.ID
		}
	}
	if v := q.Get("since"); v != "" {
		since, err := parseSince(v, time.Now())
		if err != nil {
			s.writeError(w, r, badRequestf("since %q: %v", v, err))
			return
		}
		aq.Since = since
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			s.writeError(w, r, badRequestf("limit %q: want 1 to 100000", v))
			return
		}
		aq.Limit = n
	}
	out := client.AuditResponse{Items: []client.AuditRecord{}}
	if s.opts.Audit != nil {
		recs, err := s.opts.Audit.Query(aq)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if recs != nil {
			out.Items = recs
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// auditTenant is whose records GET /api/v1/audit answers for tenant t
// asking for want (the tenant parameter): t's own when want is empty or
// t's name; another tenant's, or every tenant's ("" for want "*"), only
// when t is an admin.
func auditTenant(t *tenant, want string) (string, error) {
	switch {
	case want == "" || want == t.Name:
		return t.Name, nil
	case !t.Admin:
		return "", fmt.Errorf("%w: query parameter tenant %q: tenant %q may read only its own audit records; "+
			"another tenant's, or every tenant's (%s), need an admin tenant (admin = true in [[server.tenants]])",
			errForbidden, want, t.Name, client.AuditAllTenants)
	case want == client.AuditAllTenants:
		return "", nil
	case !tenantNameRE.MatchString(want):
		return "", badRequestf("query parameter tenant %q: want a tenant name or %q (every tenant)", want, client.AuditAllTenants)
	}
	return want, nil
}

// parseSince reads an RFC 3339 time or a duration back from now ("1h").
func parseSince(v string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("negative duration")
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 time or a duration such as 1h")
	}
	return t, nil
}
