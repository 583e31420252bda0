package server

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
)

// fakeShells is an agent whose sessions keep a directory: "cd DIR" moves
// there, "exit" ends the shell, anything else runs where the session is.
type fakeShells struct {
	mu   sync.Mutex
	cwd  map[string]string
	runs []string // "session: command" of every command that ran
}

func newFakeShells(t *testing.T) (*fakeShells, string) {
	f := &fakeShells{cwd: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/sessions/{name}/exec", func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.SessionExecRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, http.StatusBadRequest, agentapi.Error{Code: agentapi.CodeBadRequest, Message: err.Error()})
			return
		}
		name := r.PathValue("name")
		f.mu.Lock()
		f.runs = append(f.runs, name+": "+req.Command)
		exit := agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: agentapi.EventExit}}
		switch {
		case strings.HasPrefix(req.Command, "cd "):
			f.cwd[name] = strings.TrimPrefix(req.Command, "cd ")
		case req.Command == "exit":
			delete(f.cwd, name)
			exit.ShellExited = true
		}
		if !exit.ShellExited {
			exit.Cwd = f.cwd[name]
			if exit.Cwd == "" {
				exit.Cwd = "/workspace"
			}
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-ndjson")
		ndjson(w, agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: agentapi.EventStart, PID: 7}, Session: name})
		ndjson(w, exit)
	})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(agentapi.HeaderKey) != fakeKey {
			writeJSON(w, http.StatusUnauthorized, agentapi.Error{Code: agentapi.CodeUnauthorized, Message: "bad key"})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return f, ts.URL
}

// A session's command is judged where the session's last command left
// it: `cd /` then `rm -rf *` is refused, through the REST exec and the
// agent proxy alike; another session, or a shell that exited, is not
// taken for that directory.
func TestSessionCommandJudgedInItsDirectory(t *testing.T) {
	f, url := newFakeShells(t)
	h, _ := newSecHarnessAt(t, denyCfg(), url)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	rest := func(session, command string) (int, string) {
		resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken,
			`{"command":`+strconvQuote(command)+`,"session":"`+session+`"}`)
		return resp.StatusCode, out
	}
	proxied := func(session, command string) (int, string) {
		resp, out := h.do("POST", client.SandboxPath(sb.ID, "/agent/api/v1/sessions/"+session+"/exec"), aliceToken,
			`{"command":`+strconvQuote(command)+`}`)
		return resp.StatusCode, out
	}
	for _, call := range []struct {
		name string
		run  func(session, command string) (int, string)
	}{{"rest", rest}, {"proxied", proxied}} {
		s := call.name
		if code, out := call.run(s, "rm -rf *"); code != 200 {
			t.Fatalf("%s: rm -rf * in the workdir: %d %s", s, code, out)
		}
		if code, out := call.run(s, "cd /"); code != 200 {
			t.Fatalf("%s: cd /: %d %s", s, code, out)
		}
		code, out := call.run(s, "rm -rf *")
		if code != 403 || !strings.Contains(out, "rm-root") {
			t.Errorf("%s: rm -rf * after cd /: %d %s", s, code, out)
		}
		// Another session is not in /.
		if code, out := call.run(s+"-other", "rm -rf *"); code != 200 {
			t.Errorf("%s: another session: %d %s", s, code, out)
		}
		// The shell exits: the next one starts where berth cannot tell.
		if code, out := call.run(s, "exit"); code != 200 {
			t.Fatalf("%s: exit: %d %s", s, code, out)
		}
		if code, out := call.run(s, "rm -rf *"); code != 200 {
			t.Errorf("%s: after the shell exited: %d %s", s, code, out)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if n := strings.Count(strings.Join(f.runs, "\n"), "rm -rf *"); n != 6 {
		t.Errorf("rm -rf * ran %d times, want 6 (never after cd /): %q", n, f.runs)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
