package agent

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

// call sends a raw request and decodes the JSON answer.
func call(t *testing.T, method, url, key, body string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set(agentapi.HeaderKey, key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if resp.Header.Get("Content-Type") == "application/json" {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: answer is not a JSON object: %q", method, url, raw)
		}
	}
	return resp.StatusCode, resp.Header, m
}

func TestAuthAndRouting(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	execBody := `{"argv":["true"]}`
	tests := []struct {
		name, method, path, key, body string
		status                        int
		code                          string
	}{
		{"alive without key", "GET", "/alive", "", "", 200, ""},
		{"alive with wrong key", "GET", "/alive", "nope", "", 200, ""},
		{"health without key", "GET", "/health", "", "", 200, ""},
		{"server_info without key", "GET", "/server_info", "", "", 200, ""},
		{"exec without key", "POST", "/api/v1/exec", "", execBody, 401, agentapi.CodeUnauthorized},
		{"exec with wrong key", "POST", "/api/v1/exec", testKey + "x", execBody, 401, agentapi.CodeUnauthorized},
		{"exec with key prefix", "POST", "/api/v1/exec", testKey[:5], execBody, 401, agentapi.CodeUnauthorized},
		{"unknown api path without key", "GET", "/api/v1/nope", "", "", 401, agentapi.CodeUnauthorized},
		{"unknown path without key", "GET", "/nope", "", "", 401, agentapi.CodeUnauthorized},
		{"unknown api path", "GET", "/api/v1/nope", testKey, "", 404, agentapi.CodeNotFound},
		{"unknown path", "GET", "/nope", testKey, "", 404, agentapi.CodeNotFound},
		{"exec with GET", "GET", "/api/v1/exec", testKey, "", 405, agentapi.CodeMethodNotAllowed},
		{"exec with GET, no key", "GET", "/api/v1/exec", "", "", 401, agentapi.CodeUnauthorized},
		{"alive with POST", "POST", "/alive", "", "", 405, agentapi.CodeMethodNotAllowed},
		{"exec", "POST", "/api/v1/exec", testKey, execBody, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, hdr, body := call(t, tt.method, a.url+tt.path, tt.key, tt.body)
			if status != tt.status {
				t.Fatalf("status = %d, want %d (body %v)", status, tt.status, body)
			}
			if tt.code != "" {
				if body["code"] != tt.code || body["message"] == "" {
					t.Errorf("body = %v, want code %q and a message", body, tt.code)
				}
				if ct := hdr.Get("Content-Type"); ct != "application/json" {
					t.Errorf("Content-Type = %q", ct)
				}
			}
			if tt.status == 405 && hdr.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
		})
	}
}

func TestAliveAndHealthBodies(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	for _, path := range []string{"/alive", "/health"} {
		_, _, body := call(t, "GET", a.url+path, "", "")
		if body["status"] != "ok" {
			t.Errorf("%s = %v", path, body)
		}
	}
	if err := a.client.Alive(t.Context()); err != nil {
		t.Errorf("Alive: %v", err)
	}
	if err := a.client.Health(t.Context()); err != nil {
		t.Errorf("Health: %v", err)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, func(o *Options) { o.MaxRequestBytes = 1 << 10 })
	tests := []struct {
		name, body string
		status     int
		want       string // in the message
	}{
		{"empty body", ``, 400, "empty"},
		{"not JSON", `hello`, 400, "not valid JSON"},
		{"truncated", `{"argv":["ls"`, 400, "truncated"},
		{"array", `[1,2]`, 400, "must be a JSON object"},
		{"unknown field", `{"argv":["ls"],"timeout":5}`, 400, `unknown field "timeout"`},
		{"wrong type", `{"argv":"ls"}`, 400, `"argv" must be an array`},
		{"wrong element type", `{"argv":[1]}`, 400, `"argv`},
		{"timeout as string", `{"argv":["ls"],"timeout_ms":"5"}`, 400, `"timeout_ms" must be a number`},
		{"both", `{"argv":["ls"],"command":"ls"}`, 400, `only one of "argv" and "command"`},
		{"neither", `{"cwd":"/"}`, 400, `set one of "argv"`},
		{"null", `null`, 400, `set one of "argv"`},
		{"empty program", `{"argv":[""]}`, 400, `"argv[0]"`},
		{"negative timeout", `{"argv":["ls"],"timeout_ms":-1}`, 400, `"timeout_ms" is -1`},
		{"negative cap", `{"argv":["ls"],"max_output_bytes":-5}`, 400, `"max_output_bytes" is -5`},
		{"nul in argv", `{"argv":["ls","a\u0000b"]}`, 400, `"argv[1]" contains a NUL`},
		{"nul in cwd", `{"argv":["ls"],"cwd":"a\u0000"}`, 400, `"cwd" contains a NUL`},
		{"reserved env", `{"argv":["ls"],"env":{"BERTH_AGENT_KEY":"x"}}`, 400, `may not set BERTH_AGENT_KEY`},
		{"bad env name", `{"argv":["ls"],"env":{"A=B":"x"}}`, 400, `"A=B"`},
		{"stdin not base64", `{"argv":["cat"],"stdin":"%%%"}`, 400, `stdin`},
		{"trailing data", `{"argv":["ls"]} {}`, 400, "after the JSON object"},
		{"too large", `{"command":"` + strings.Repeat("x", 2<<10) + `"}`, 413, "larger than 1024 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, _, body := call(t, "POST", a.url+agentapi.PathExec, testKey, tt.body)
			if status != tt.status {
				t.Fatalf("status = %d, want %d (body %v)", status, tt.status, body)
			}
			msg, _ := body["message"].(string)
			if !strings.Contains(msg, tt.want) {
				t.Errorf("message %q does not contain %q", msg, tt.want)
			}
			wantCode := agentapi.CodeBadRequest
			if tt.status == 413 {
				wantCode = agentapi.CodeTooLarge
			}
			if body["code"] != wantCode {
				t.Errorf("code = %v, want %s", body["code"], wantCode)
			}
		})
	}
}

func TestServerInfo(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, func(o *Options) { o.Version = "v9.9.9" })
	info, err := a.client.ServerInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.Version != "v9.9.9" || info.UserID != a.user.UID || info.GroupID != a.user.GID ||
		info.User != a.user.Name || info.Workdir != a.workdir || info.Processes != 0 {
		t.Errorf("info = %+v", info)
	}
	if info.UptimeSeconds <= 0 || info.IdleSeconds <= 0 {
		t.Errorf("uptime %v idle %v, want > 0", info.UptimeSeconds, info.IdleSeconds)
	}

	// While a command runs the agent is not idle.
	errDone := errors.New("checked")
	_, err = a.client.Exec(t.Context(), agentapi.ExecRequest{Argv: []string{"sleep", "1000"}},
		func(ev agentapi.ExecEvent) error {
			if ev.Type != agentapi.EventStart {
				return nil
			}
			busy, err := a.client.ServerInfo(t.Context())
			if err != nil {
				return err
			}
			if busy.Processes != 1 || busy.IdleSeconds != 0 {
				t.Errorf("while running: processes %d idle %v, want 1 and 0", busy.Processes, busy.IdleSeconds)
			}
			return errDone
		})
	if !errors.Is(err, errDone) {
		t.Fatal(err)
	}
	a.waitProcsDone(t)
	after, err := a.client.ServerInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if after.Processes != 0 {
		t.Errorf("after: processes = %d", after.Processes)
	}
	// Idle counts from the end of the last keyed request, not from the start.
	if after.IdleSeconds >= after.UptimeSeconds {
		t.Errorf("idle %v >= uptime %v after a keyed request", after.IdleSeconds, after.UptimeSeconds)
	}
}

func TestClientAPIError(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	bad := agentapi.New(a.url, "wrong", a.hc)
	_, err := bad.Exec(t.Context(), agentapi.ExecRequest{Argv: []string{"true"}}, nil)
	var ae *agentapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Fatalf("err = %v, want an *APIError with 401", err)
	}
	var e *agentapi.Error
	if !errors.As(err, &e) || e.Code != agentapi.CodeUnauthorized {
		t.Errorf("errors.As *Error: %v", e)
	}
}
