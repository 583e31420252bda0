package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
)

// fakeView is an in-memory View: what the monitor will be, without Docker.
type fakeView struct {
	mu        sync.Mutex
	sandboxes map[string]sandbox.Sandbox
	subs      map[chan monitor.Event]struct{}
	published []monitor.Event
	touched   map[string]int
	// hide keeps ids out of the view (a view that lags behind a create).
	hide map[string]bool
}

func newFakeView() *fakeView {
	return &fakeView{sandboxes: map[string]sandbox.Sandbox{}, subs: map[chan monitor.Event]struct{}{},
		touched: map[string]int{}, hide: map[string]bool{}}
}

func (v *fakeView) put(sb sandbox.Sandbox) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.hide[sb.ID] {
		return
	}
	// The monitor's records come from a list: no key.
	sb.Key = ""
	v.sandboxes[sb.ID] = sb
}

func (v *fakeView) Forget(id string) { v.del(id) }

func (v *fakeView) del(id string) {
	v.mu.Lock()
	delete(v.sandboxes, id)
	v.mu.Unlock()
}

func (v *fakeView) List(f monitor.Filter) []sandbox.Sandbox {
	v.mu.Lock()
	defer v.mu.Unlock()
	var out []sandbox.Sandbox
	for _, sb := range v.sandboxes {
		if f.Owner != "" && sb.Owner != f.Owner || f.Status != "" && sb.Status != f.Status {
			continue
		}
		ok := true
		for k, val := range f.Label {
			if sb.Labels[k] != val {
				ok = false
			}
		}
		if ok {
			out = append(out, sb)
		}
	}
	slices.SortFunc(out, func(a, b sandbox.Sandbox) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out
}

func (v *fakeView) Get(id string) (sandbox.Sandbox, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sb, ok := v.sandboxes[id]
	return sb, ok
}

func (v *fakeView) Subscribe(ctx context.Context) <-chan monitor.Event {
	ch := make(chan monitor.Event, 64)
	v.mu.Lock()
	v.subs[ch] = struct{}{}
	v.mu.Unlock()
	context.AfterFunc(ctx, func() {
		v.mu.Lock()
		delete(v.subs, ch)
		close(ch)
		v.mu.Unlock()
	})
	return ch
}

func (v *fakeView) Publish(e monitor.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.published = append(v.published, e)
	for ch := range v.subs {
		select {
		case ch <- e:
		default: // a subscriber that lags misses it, as with the monitor
		}
	}
}

func (v *fakeView) Touch(id string) {
	v.mu.Lock()
	v.touched[id]++
	v.mu.Unlock()
}

func (v *fakeView) touches(id string) int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.touched[id]
}

func (v *fakeView) events() []monitor.Event {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.published)
}

// fakeRuntime is an in-memory sandbox.Runtime whose sandboxes' agent is a
// fakeAgent. It keeps the view current, as the monitor does from Docker's
// events.
type fakeRuntime struct {
	view     *fakeView
	agentURL string

	mu        sync.Mutex
	sandboxes map[string]sandbox.Sandbox
	specs     map[string]sandbox.Spec
	n         int
	clock     time.Time
	// gate, if set, holds every Create until it is closed.
	gate    chan struct{}
	entered chan struct{} // a Create reached the gate
	logs    string
}

const fakeKey = "sandbox-key-0123456789"

func newFakeRuntime(view *fakeView, agentURL string) *fakeRuntime {
	return &fakeRuntime{view: view, agentURL: agentURL, sandboxes: map[string]sandbox.Sandbox{},
		specs: map[string]sandbox.Spec{}, clock: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
}

func (r *fakeRuntime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	r.mu.Lock()
	gate, entered := r.gate, r.entered
	r.mu.Unlock()
	if gate != nil {
		if entered != nil {
			entered <- struct{}{}
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return sandbox.Sandbox{}, ctx.Err()
		}
	}
	if err := spec.Validate(); err != nil {
		return sandbox.Sandbox{}, err
	}
	if spec.Image.Base == "missing:image" {
		return sandbox.Sandbox{}, fmt.Errorf("%w: pull missing:image: not found", sandbox.ErrImage)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, sb := range r.sandboxes {
		if spec.Name != "" && sb.Name == spec.Name {
			return sandbox.Sandbox{}, fmt.Errorf("%w: name %q is taken", sandbox.ErrConflict, spec.Name)
		}
	}
	r.n++
	r.clock = r.clock.Add(time.Second)
	id := fmt.Sprintf("%02x%014x", r.n, r.n*7919)
	sb := sandbox.Sandbox{
		ID: id, Name: spec.Name, Status: sandbox.StatusRunning, State: "running", Image: spec.Image.Base,
		CreatedAt: r.clock, Labels: spec.Labels, Owner: spec.Owner, URLs: map[string]string{"agent": r.agentURL},
		Ports: []sandbox.Port{}, AgentURL: r.agentURL, Key: fakeKey, ContainerID: "c" + id,
		SecurityPolicy: spec.SecurityPolicy,
	}
	r.sandboxes[id] = sb
	r.specs[id] = spec
	r.view.put(sb)
	return sb, nil
}

func (r *fakeRuntime) resolve(ref string) (sandbox.Sandbox, error) {
	var match []sandbox.Sandbox
	for _, sb := range r.sandboxes {
		if sb.ID == ref || sb.Name == ref {
			return sb, nil
		}
		if strings.HasPrefix(sb.ID, ref) {
			match = append(match, sb)
		}
	}
	switch len(match) {
	case 1:
		return match[0], nil
	case 0:
		return sandbox.Sandbox{}, fmt.Errorf("%w: %q", sandbox.ErrNotFound, ref)
	}
	return sandbox.Sandbox{}, fmt.Errorf("%w: %q", sandbox.ErrAmbiguous, ref)
}

func (r *fakeRuntime) Get(_ context.Context, ref string) (sandbox.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.resolve(ref)
}

func (r *fakeRuntime) List(_ context.Context, opts sandbox.ListOptions) ([]sandbox.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []sandbox.Sandbox
	for _, sb := range r.sandboxes {
		if (opts.All || sb.Status == sandbox.StatusRunning) && (opts.Owner == "" || sb.Owner == opts.Owner) {
			out = append(out, sb)
		}
	}
	slices.SortFunc(out, func(a, b sandbox.Sandbox) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

func (r *fakeRuntime) setState(ref, state string) (sandbox.Sandbox, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, err := r.resolve(ref)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	sb.State, sb.Status = state, sandbox.StatusFromState(state)
	r.sandboxes[sb.ID] = sb
	r.view.put(sb)
	return sb, nil
}

func (r *fakeRuntime) Pause(_ context.Context, ref string) (sandbox.Sandbox, error) {
	return r.setState(ref, "paused")
}

func (r *fakeRuntime) Resume(_ context.Context, ref string) (sandbox.Sandbox, error) {
	return r.setState(ref, "running")
}

func (r *fakeRuntime) Stop(_ context.Context, ref string) (sandbox.Sandbox, error) {
	return r.setState(ref, "exited")
}

func (r *fakeRuntime) Remove(_ context.Context, ref string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, err := r.resolve(ref)
	if err != nil {
		return nil
	}
	delete(r.sandboxes, sb.ID)
	r.view.del(sb.ID)
	return nil
}

// Logs gives r.logs; with Follow, then blocks until ctx ends.
func (r *fakeRuntime) Logs(ctx context.Context, ref string, opts sandbox.LogOptions) (io.ReadCloser, error) {
	r.mu.Lock()
	_, err := r.resolve(ref)
	logs := r.logs
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		if _, err := io.WriteString(pw, logs); err != nil {
			return
		}
		if opts.Follow {
			<-ctx.Done()
		}
		pw.Close()
	}()
	return pr, nil
}

func (r *fakeRuntime) spec(id string) sandbox.Spec {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.specs[id]
}

// fakeAgent serves what the tests need of the agent API, and records the
// headers it got.
type fakeAgent struct {
	*httptest.Server
	mu      sync.Mutex
	headers []http.Header
	paths   []string
	files   map[string]string
	// release ends execs of "block"; started gets a value when one begins.
	release chan struct{}
	started chan struct{}
	procs   fakeProcs
}

func newFakeAgent(t testing.TB) *fakeAgent {
	a := &fakeAgent{files: map[string]string{}, release: make(chan struct{}), started: make(chan struct{}, 16),
		procs: newFakeProcs()}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/exec", a.exec)
	mux.HandleFunc("POST /api/v1/sessions/{name}/exec", a.sessionExec)
	mux.HandleFunc("GET /api/v1/files", a.readFile)
	mux.HandleFunc("PUT /api/v1/files", a.writeFile)
	mux.HandleFunc("GET /api/v1/pty", a.pty)
	mux.HandleFunc("POST /api/v1/echo", a.echoEarly)
	mux.HandleFunc("POST /api/v1/processes", a.procs.start)
	mux.HandleFunc("POST /api/v1/processes/{id}/wait", a.procs.wait)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, agentapi.Error{Code: agentapi.CodeNotFound, Message: "no such path " + r.URL.Path})
	})
	a.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.headers = append(a.headers, r.Header.Clone())
		a.paths = append(a.paths, r.URL.EscapedPath()+"?"+r.URL.RawQuery)
		a.mu.Unlock()
		if r.Header.Get(agentapi.HeaderKey) != fakeKey {
			writeJSON(w, http.StatusUnauthorized, agentapi.Error{Code: agentapi.CodeUnauthorized, Message: "bad key"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(a.Close)
	return a
}

func (a *fakeAgent) lastHeader() http.Header {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.headers[len(a.headers)-1]
}

func (a *fakeAgent) lastPath() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.paths[len(a.paths)-1]
}

func ndjson(w http.ResponseWriter, v any) {
	b, _ := json.Marshal(v)
	_, _ = w.Write(append(b, '\n'))
	_ = http.NewResponseController(w).Flush()
}

// exec: argv ["nope"] is a 400; command "block" waits for release (or the
// caller going away); "exit N" exits N; "big" prints one line of 200 KiB;
// anything else echoes itself.
func (a *fakeAgent) exec(w http.ResponseWriter, r *http.Request) {
	var req agentapi.ExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, agentapi.Error{Code: agentapi.CodeBadRequest, Message: err.Error()})
		return
	}
	if len(req.Argv) > 0 && req.Argv[0] == "nope" {
		writeJSON(w, http.StatusBadRequest, agentapi.Error{Code: agentapi.CodeBadRequest, Message: `program "nope" not found`})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	ndjson(w, agentapi.ExecEvent{Type: agentapi.EventStart, PID: 42})
	text := req.Command
	if text == "" {
		text = strings.Join(req.Argv, " ")
	}
	code := 0
	switch {
	case text == "block":
		a.started <- struct{}{}
		select {
		case <-a.release:
		case <-r.Context().Done():
			return
		}
	case strings.HasPrefix(text, "exit "):
		code, _ = strconv.Atoi(strings.TrimPrefix(text, "exit "))
	case text == "big":
		text = strings.Repeat("x", 200<<10)
	}
	ndjson(w, agentapi.ExecEvent{Type: agentapi.EventStdout, Data: []byte(text + "\n")})
	if len(req.Stdin) > 0 {
		ndjson(w, agentapi.ExecEvent{Type: agentapi.EventStderr, Data: req.Stdin})
	}
	ndjson(w, agentapi.ExecEvent{Type: agentapi.EventExit, ExitCode: code, DurationMS: 1})
}

func (a *fakeAgent) sessionExec(w http.ResponseWriter, r *http.Request) {
	var req agentapi.SessionExecRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, agentapi.Error{Code: agentapi.CodeBadRequest, Message: err.Error()})
		return
	}
	name := r.PathValue("name")
	w.Header().Set("Content-Type", "application/x-ndjson")
	ndjson(w, agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: agentapi.EventStart, PID: 7}, Session: name, NewSession: true})
	ndjson(w, agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: agentapi.EventStdout, Data: []byte(req.Command + "\n")}})
	// "exit N" ends with code N; "sleep" is still running when the call returns.
	exit := agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: agentapi.EventExit}, Cwd: "/workspace"}
	if n, ok := strings.CutPrefix(req.Command, "exit "); ok {
		exit.ExitCode, _ = strconv.Atoi(n)
	}
	if strings.HasPrefix(req.Command, "sleep") {
		exit = agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: agentapi.EventExit}, Running: true}
	}
	ndjson(w, exit)
}

func (a *fakeAgent) readFile(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	a.mu.Lock()
	data, ok := a.files[p]
	a.mu.Unlock()
	if !ok {
		writeJSON(w, http.StatusNotFound, agentapi.Error{Code: agentapi.CodeNotFound, Message: "no file " + p})
		return
	}
	stat, _ := agentapi.EncodeHeaderJSON(agentapi.FileInfo{Path: p, Type: agentapi.FileTypeFile, Size: int64(len(data))})
	w.Header().Set(agentapi.HeaderFileStat, stat)
	_, _ = io.WriteString(w, data)
}

func (a *fakeAgent) writeFile(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Query().Get("path")
	b, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.files[p] = string(b)
	a.mu.Unlock()
	writeJSON(w, http.StatusCreated, agentapi.FileInfo{Path: p, Type: agentapi.FileTypeFile, Size: int64(len(b))})
}

// pty echoes one binary message (with the cmd parameter), then exits 3.
func (a *fakeAgent) pty(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	ctx := r.Context()
	_ = c.Write(ctx, websocket.MessageBinary, []byte("hello "+r.URL.Query().Get("cmd")))
	if typ, data, err := c.Read(ctx); err == nil && typ == websocket.MessageBinary {
		_ = c.Write(ctx, websocket.MessageBinary, data)
	}
	exit, _ := json.Marshal(agentapi.PTYControl{Type: agentapi.PTYExit, ExitCode: 3})
	_ = c.Write(ctx, websocket.MessageText, exit)
	_ = c.Close(websocket.StatusNormalClosure, "")
}

// echoEarly answers before it reads the request body, then echoes the body:
// an agent that streams progress of an upload.
func (a *fakeAgent) echoEarly(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).EnableFullDuplex()
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "started\n")
	_ = http.NewResponseController(w).Flush()
	_, _ = io.Copy(w, r.Body)
}

// fakeProcs are the fake agent's background processes: "exit N" has exited
// with N when it starts; any other command runs until end(id, code), or
// until drop() (the agent dies: every wait call is cut) or forget(id)
// (then waits for it are 404s). A wait honours timeout_ms.
type fakeProcs struct {
	mu     sync.Mutex
	n      int
	byID   map[string]*fakeProc
	waits  chan string   // the id of every wait call, as it comes
	dropCh chan struct{} // closed by drop
}

type fakeProc struct {
	info agentapi.ProcessInfo
	done chan struct{} // closed when it exits
}

func newFakeProcs() fakeProcs {
	return fakeProcs{byID: map[string]*fakeProc{}, waits: make(chan string, 64), dropCh: make(chan struct{})}
}

func (f *fakeProcs) start(w http.ResponseWriter, r *http.Request) {
	var req agentapi.ProcessRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, agentapi.Error{Code: agentapi.CodeBadRequest, Message: err.Error()})
		return
	}
	f.mu.Lock()
	f.n++
	p := &fakeProc{done: make(chan struct{}), info: agentapi.ProcessInfo{ID: strconv.Itoa(f.n), PID: 100 + f.n,
		Command: req.Command, Argv: req.Argv, Cwd: "/workspace", State: agentapi.ProcessRunning, Started: time.Now().UTC()}}
	if n, ok := strings.CutPrefix(req.Command, "exit "); ok {
		p.info.ExitCode, _ = strconv.Atoi(n)
		p.info.State, p.info.Ended = agentapi.ProcessExited, p.info.Started.Add(1500*time.Millisecond)
		close(p.done)
	}
	f.byID[p.info.ID] = p
	info := p.info
	f.mu.Unlock()
	info.State = agentapi.ProcessRunning // as the agent answers a start
	info.ExitCode, info.Ended = 0, time.Time{}
	writeJSON(w, http.StatusCreated, info)
}

func (f *fakeProcs) wait(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	f.mu.Lock()
	p := f.byID[id]
	f.mu.Unlock()
	select {
	case f.waits <- id:
	default:
	}
	if p == nil {
		writeJSON(w, http.StatusNotFound, agentapi.Error{Code: agentapi.CodeNotFound, Message: "no process " + id})
		return
	}
	var timeout <-chan time.Time
	if ms, err := strconv.Atoi(r.URL.Query().Get("timeout_ms")); err == nil && ms > 0 {
		t := time.NewTimer(time.Duration(ms) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-p.done:
	case <-timeout:
	case <-f.dropCh:
		panic(http.ErrAbortHandler) // the connection is cut
	case <-r.Context().Done():
		return
	}
	f.mu.Lock()
	info := p.info
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, info)
}

// end makes process id exit with code.
func (f *fakeProcs) end(id string, code int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.byID[id]
	p.info.State, p.info.ExitCode, p.info.Ended = agentapi.ProcessExited, code, time.Now().UTC()
	close(p.done)
}

func (f *fakeProcs) forget(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.byID, id)
}

func (f *fakeProcs) drop() { close(f.dropCh) }
