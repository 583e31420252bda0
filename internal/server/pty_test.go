package server

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
)

// fakeTerm is an agent whose terminal keeps every byte typed into it.
type fakeTerm struct {
	*httptest.Server
	mu     sync.Mutex
	typed  []byte
	query  string
	change chan struct{} // closed and replaced when typed grows
}

func newFakeTerm(t *testing.T) *fakeTerm {
	ft := &fakeTerm{change: make(chan struct{})}
	ft.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(agentapi.HeaderKey) != fakeKey || r.URL.Path != agentapi.PathPTY {
			writeJSON(w, http.StatusNotFound, agentapi.Error{Code: agentapi.CodeNotFound, Message: "no"})
			return
		}
		ft.mu.Lock()
		ft.query = r.URL.RawQuery
		ft.mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if typ != websocket.MessageBinary {
				continue
			}
			ft.mu.Lock()
			ft.typed = append(ft.typed, data...)
			close(ft.change)
			ft.change = make(chan struct{})
			exited := strings.HasSuffix(string(ft.typed), "exit\r")
			ft.mu.Unlock()
			if exited {
				exit, _ := json.Marshal(agentapi.PTYControl{Type: agentapi.PTYExit, ExitCode: 5})
				_ = c.Write(r.Context(), websocket.MessageText, exit)
				_ = c.Close(websocket.StatusNormalClosure, "")
				return
			}
		}
	}))
	t.Cleanup(ft.Close)
	return ft
}

// waitTyped waits until the terminal got exactly want.
func (ft *fakeTerm) waitTyped(t *testing.T, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		ft.mu.Lock()
		got, ch := string(ft.typed), ft.change
		ft.mu.Unlock()
		if got == want {
			return
		}
		if len(got) > len(want) || !strings.HasPrefix(want, got) {
			t.Fatalf("the terminal got %q, want %q", got, want)
		}
		select {
		case <-ch:
		case <-timeout:
			t.Fatalf("the terminal got %q, want %q", got, want)
		}
	}
}

func newPTYHarness(t *testing.T, cfg Config) (*harness, *audit.Trail, *fakeTerm) {
	t.Helper()
	ft := newFakeTerm(t)
	h, trail := newSecHarnessAt(t, cfg, ft.URL)
	return h, trail, ft
}

// term is a client's end of a terminal through the server.
type term struct {
	t      *testing.T
	ws     *websocket.Conn
	shown  chan string           // binary messages
	denied chan client.PTYDenied // "denied" text messages
	exit   chan agentapi.PTYControl
}

func dialTerm(t *testing.T, h *harness, id string, q map[string]string) *term {
	t.Helper()
	vals := map[string][]string{}
	for k, v := range q {
		vals[k] = []string{v}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	ws, err := h.client(aliceToken).Agent(id).DialPTYSocket(ctx, vals)
	if err != nil {
		t.Fatalf("dial the terminal through the server: %v", err)
	}
	tm := &term{t: t, ws: ws, shown: make(chan string, 64), denied: make(chan client.PTYDenied, 64), exit: make(chan agentapi.PTYControl, 1)}
	go func() {
		for {
			typ, data, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			if typ == websocket.MessageBinary {
				tm.shown <- string(data)
				continue
			}
			var d client.PTYDenied
			if json.Unmarshal(data, &d) == nil && d.Type == client.PTYDeniedType {
				tm.denied <- d
				continue
			}
			var c agentapi.PTYControl
			if json.Unmarshal(data, &c) == nil && c.Type == agentapi.PTYExit {
				tm.exit <- c
			}
		}
	}()
	t.Cleanup(func() { _ = ws.CloseNow() })
	return tm
}

func (tm *term) typeKeys(keys string) {
	tm.t.Helper()
	if err := tm.ws.Write(tm.t.Context(), websocket.MessageBinary, []byte(keys)); err != nil {
		tm.t.Fatalf("type %q: %v", keys, err)
	}
}

func (tm *term) wantDenied(rule string) {
	tm.t.Helper()
	select {
	case d := <-tm.denied:
		if d.Code != client.CodeDenied || d.RuleID != rule || d.Level != "HIGH" || !strings.Contains(d.Message, rule) {
			tm.t.Fatalf("denied message %+v, want rule %s", d, rule)
		}
	case <-time.After(5 * time.Second):
		tm.t.Fatalf("no denied message for rule %s", rule)
	}
	select {
	case s := <-tm.shown:
		if !strings.Contains(s, "berth: refused by the security policy") {
			tm.t.Fatalf("the terminal shows %q", s)
		}
	case <-time.After(5 * time.Second):
		tm.t.Fatal("the refusal is not shown in the terminal")
	}
}

// Under deny, a dangerous line typed into a terminal is erased instead of
// run, however it was typed; a harmless one runs; keys berth cannot follow
// refuse the line.
func TestPTYDenyLines(t *testing.T) {
	h, trail, ft := newPTYHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	tm := dialTerm(t, h, sb.ID, nil)

	typed := ""
	step := func(keys, reaches string) {
		t.Helper()
		tm.typeKeys(keys)
		typed += reaches
		ft.waitTyped(t, typed)
	}
	step("ls -la\r", "ls -la\r")
	// Nothing of a refused line reaches the shell, in one piece or many.
	step("rm -rf /", "")
	step("\r", "")
	tm.wantDenied("rm-root")
	step("rm -rf /x\x7f\n", "")
	tm.wantDenied("rm-root")
	// Continued over two lines: the first is not a command yet, and
	// passes; the second makes it one.
	step("rm -rf \\\r", "rm -rf \\\r")
	step("/\r", "")
	tm.wantDenied("rm-root")
	// Ctrl-C passes and drops the unfinished command; what follows stands
	// alone.
	step("\x03echo /\r", "\x03echo /\r")
	// Keys the shell could edit, recall or run a line with are dropped:
	// Tab, Ctrl-O (bash runs the line), an escape sequence cut by Enter.
	step("ls /ho\t\r", "ls /ho\r")
	step("touch x\x0f\x15", "")
	step("echo x #\x1b[\r", "echo x #\r")
	// Several lines in one message: each judged.
	step("echo a\rsudo rm -rf /\recho b\r", "echo a\recho b\r")
	tm.wantDenied("rm-root")
	// What changes how keys are read is refused in a terminal.
	step("stty erase Z\r", "")
	tm.wantDenied("terminal-settings")
	// A look-alike runs.
	step("rm -rf ./build\r", "rm -rf ./build\r")

	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	var got []string
	for _, r := range recs {
		if r.Action != audit.ActionPTYInput {
			t.Errorf("record %+v: action %s", r, r.Action)
		}
		got = append(got, string(r.Decision)+":"+r.What)
	}
	want := []string{"allowed:ls -la", "denied:rm -rf /", "denied:rm -rf /", "denied:rm -rf \\\n/", "allowed:echo /",
		"allowed:ls /ho", "allowed:echo x #", "allowed:echo a", "denied:sudo rm -rf /", "allowed:echo b",
		"denied:stty erase Z", "allowed:rm -rf ./build"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("records\n%q\nwant\n%q", got, want)
	}
	// Resize and other control messages pass.
	if err := tm.ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"resize","cols":100,"rows":30}`)); err != nil {
		t.Fatal(err)
	}
	// The shell's exit reaches the client.
	tm.typeKeys("exit\r")
	select {
	case c := <-tm.exit:
		if c.ExitCode != 5 {
			t.Errorf("exit %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit message")
	}
}

// Under confirm, the Enter of a dangerous line waits for approval: typing
// is held meanwhile, an approval sends it, a refusal erases the line.
func TestPTYConfirm(t *testing.T) {
	cfg := twoTenants()
	cfg.Security = SecurityConfig{Policy: PolicyConfirm, ApprovalTimeout: 10 * time.Second}
	h, _, ft := newPTYHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	tm := dialTerm(t, h, sb.ID, nil)
	ca := h.client(aliceToken)
	waitPending := func() client.Approval { return waitApproval(t, ca) }
	tm.typeKeys("rm -rf /\r")
	p := waitPending()
	if p.What != "rm -rf /" || p.Action != audit.ActionPTYInput {
		t.Fatalf("pending %+v", p)
	}
	tm.typeKeys("ls\r") // held behind the pending line
	ft.mu.Lock()
	early := string(ft.typed)
	ft.mu.Unlock()
	if early != "" {
		t.Fatalf("the shell got %q before the approval", early)
	}
	if err := ca.Answer(t.Context(), p.ID, true); err != nil {
		t.Fatal(err)
	}
	ft.waitTyped(t, "rm -rf /\rls\r")

	tm.typeKeys("mkfs.ext4 /dev/sda\r")
	p = waitPending()
	if err := ca.Answer(t.Context(), p.ID, false); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-tm.denied:
		if !strings.Contains(d.Message, "denied by a person") {
			t.Errorf("denied %+v", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no denied message")
	}
	tm.typeKeys("echo z\r")
	ft.waitTyped(t, "rm -rf /\rls\recho z\r")
}

// A command run in place of the shell is judged as an exec when the
// terminal opens: refused, no terminal opens; allowed, its exit code
// completes the record.
func TestPTYCommand(t *testing.T) {
	h, trail, ft := newPTYHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	ag := h.client(aliceToken).Agent(sb.ID)
	_, err := ag.DialPTYSocket(t.Context(), map[string][]string{agentapi.PTYQueryCmd: {"rm -rf /"}})
	var apiErr *agentapi.APIError
	if err == nil || !strings.Contains(err.Error(), "rm-root") {
		t.Fatalf("refused terminal command: %v (%T)", err, apiErr)
	}
	ft.mu.Lock()
	q := ft.query
	ft.mu.Unlock()
	if q != "" {
		t.Fatalf("the agent was asked for a terminal: %q", q)
	}
	tm := dialTerm(t, h, sb.ID, map[string]string{agentapi.PTYQueryCmd: "top", agentapi.QueryKey: "leak"})
	ft.mu.Lock()
	q = ft.query
	ft.mu.Unlock()
	if q != "cmd=top" {
		t.Errorf("the agent got query %q", q)
	}
	tm.typeKeys("exit\r")
	<-tm.exit
	deadline := time.Now().Add(5 * time.Second)
	for {
		recs := records(t, trail, audit.Query{Sandbox: sb.ID})
		if len(recs) == 3 && recs[2].What == "exit" && recs[1].What == "top" && recs[1].ExitCode != nil && *recs[1].ExitCode == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records %+v", recs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Under audit the keys pass as typed (editing, completion and history
// work) and each line is recorded, refused never.
func TestPTYAuditFollows(t *testing.T) {
	cfg := twoTenants()
	cfg.Security = SecurityConfig{Policy: PolicyAudit}
	h, trail, ft := newPTYHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	tm := dialTerm(t, h, sb.ID, nil)
	keys := "ls -la\rrm -rf /\rls /ho\t\r\x1b[A\r"
	tm.typeKeys(keys)
	ft.waitTyped(t, keys)
	var got []string
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < 4 && time.Now().Before(deadline) {
		got = got[:0]
		for _, r := range records(t, trail, audit.Query{Sandbox: sb.ID}) {
			got = append(got, string(r.Decision)+":"+r.Level+":"+r.What)
		}
		time.Sleep(5 * time.Millisecond) // polling the trail
	}
	want := "allowed:LOW:ls -la|audited:HIGH:rm -rf /|audited:HIGH:ls /ho|audited:HIGH:"
	if strings.Join(got, "|") != want {
		t.Errorf("records %q, want %q", strings.Join(got, "|"), want)
	}
}

// A terminal's env is judged when it opens, with its cmd or alone, and a
// create's env before the sandbox is made: refused, nothing is asked of
// the agent or the runtime.
func TestPTYAndCreateEnv(t *testing.T) {
	h, trail, ft := newPTYHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	ag := h.client(aliceToken).Agent(sb.ID)
	for _, q := range []map[string][]string{
		{agentapi.PTYQueryCmd: {"top"}, agentapi.PTYQueryEnv: {"PROMPT_COMMAND=rm -rf /"}},
		{agentapi.PTYQueryEnv: {"LANG=C", "LD_PRELOAD=/tmp/x.so"}},
	} {
		if _, err := ag.DialPTYSocket(t.Context(), q); err == nil || !strings.Contains(err.Error(), "refused by the security policy") {
			t.Errorf("terminal with %v: %v, want a refusal", q, err)
		}
	}
	ft.mu.Lock()
	q := ft.query
	ft.mu.Unlock()
	if q != "" {
		t.Fatalf("the agent was asked for a terminal: %q", q)
	}
	resp, out := h.do("POST", client.PathSandboxes, aliceToken, `{"env":{"BASH_ENV":"/tmp/evil.sh"}}`)
	wantDenied(t, resp, out, "env-shell-startup")
	list, err := h.client(aliceToken).List(t.Context(), client.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("after a refused create: %+v, %v", list, err)
	}
	var kinds []string
	for _, r := range records(t, trail, audit.Query{}) {
		kinds = append(kinds, string(r.Action)+":"+string(r.Decision))
	}
	if got := strings.Join(kinds, ","); got != "exec:denied,env:denied,env:denied" {
		t.Errorf("records %s", got)
	}
	// A harmless env passes.
	ws, err := ag.DialPTYSocket(t.Context(), map[string][]string{agentapi.PTYQueryEnv: {"LANG=C"}})
	if err != nil {
		t.Fatalf("terminal with LANG: %v", err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

// A client that goes away while its line waits for approval is seen at
// once: the wait ends, refused, and the terminal closes.
func TestPTYConfirmClientGone(t *testing.T) {
	cfg := twoTenants()
	cfg.Security = SecurityConfig{Policy: PolicyConfirm, ApprovalTimeout: time.Minute}
	h, trail, ft := newPTYHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	tm := dialTerm(t, h, sb.ID, nil)
	ca := h.client(aliceToken)
	tm.typeKeys("rm -rf /\r")
	p := waitApproval(t, ca)
	_ = tm.ws.CloseNow()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := ca.Approvals(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the approval still waits after its client went away")
		}
		time.Sleep(5 * time.Millisecond) // polling the server's approvals
	}
	for {
		recs := records(t, trail, audit.Query{})
		if len(recs) == 1 && recs[0].ID == p.ID && recs[0].Decision == audit.TimedOut {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records %+v", recs)
		}
		time.Sleep(5 * time.Millisecond) // polling the trail
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if len(ft.typed) != 0 {
		t.Errorf("the shell got %q", ft.typed)
	}
}
