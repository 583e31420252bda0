package agent

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

func TestSessionDecodeErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", agentapi.MaxInputLine+1)
	tests := []struct {
		kind, body, want string
	}{
		{"create", `{}`, "session name"},
		{"create", `{"name":"a/b"}`, "not valid"},
		{"create", `{"name":".x"}`, "not valid"},
		{"create", `{"name":"` + strings.Repeat("a", 65) + `"}`, "not valid"},
		{"create", `{"name":"a","env":{"A=B":"1"}}`, `"env" name "A=B"`},
		{"create", `{"name":"a","env":{"BERTH_AGENT_KEY":"1"}}`, "belongs to the agent"},
		{"create", `{"name":"a","cwd":"a\u0000"}`, `"cwd" contains a NUL`},
		{"create", `{"name":"a","shel":"sh"}`, `unknown field "shel"`},
		{"exec", `{"command":"x","timeout_ms":-1}`, `"timeout_ms"`},
		{"exec", `{"command":"x","no_output_timeout_ms":-5}`, `"no_output_timeout_ms"`},
		{"exec", `{"command":"x","max_output_bytes":-1}`, `"max_output_bytes"`},
		{"exec", `{"command":"a\u0000"}`, `"command" contains a NUL`},
		{"exec", `{"create":{"cwd":"/"}}`, `"create" needs a "command"`},
		{"exec", `{"command":"x","create":{"env":{"":"1"}}}`, `"create.env" has an empty`},
		{"exec", `{"command":1}`, `"command" must be a string`},
		{"input", `{"control":"C-x"}`, `"control" is "C-x"`},
		{"input", `{"text":"a\u0007"}`, "control character 0x07"},
		{"input", `{"text":"` + long + `"}`, "longer than"},
		{"input", `{"no_newline":true}`, "nothing to send"},
		{"input", `{"text":"x","timeout_ms":-1}`, `"timeout_ms"`},
	}
	for _, tt := range tests {
		var e *apiError
		r := strings.NewReader(tt.body)
		switch tt.kind {
		case "create":
			_, e = decodeSessionCreateRequest(r, 1<<20)
		case "exec":
			_, e = decodeSessionExecRequest(r, 1<<20)
		case "input":
			_, e = decodeSessionInputRequest(r, 1<<20)
		}
		if e == nil || e.Status != http.StatusBadRequest || !strings.Contains(e.Body.Message, tt.want) {
			t.Errorf("%s %s: got %v, want a 400 mentioning %q", tt.kind, tt.body, e, tt.want)
		}
	}
	// Good ones.
	if _, e := decodeSessionInputRequest(strings.NewReader(`{"text":"a\tb\nc`+strings.Repeat("y", 100)+`"}`), 1<<20); e != nil {
		t.Errorf("input with tab and newline: %v", e)
	}
	if req, e := decodeSessionCreateRequest(strings.NewReader(`{"name":"Work-1.a_b","shell":"sh","cwd":"sub","env":{"A":"1"}}`), 1<<20); e != nil || req.Shell != "sh" || req.Env["A"] != "1" {
		t.Errorf("create: %+v %v", req, e)
	}
}

func TestSessionOutputQuery(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		q    string
		want string // "" means valid
	}{
		{"", ""},
		{"timeout_ms=100&no_output_timeout_ms=5", ""},
		{"timeout_ms=-1", `"timeout_ms"`},
		{"timeout_ms=x", "not a whole number"},
		{"timeout_ms=1&timeout_ms=2", "given 2 times"},
		{"wait=1", `unknown query parameter "wait"`},
	} {
		v, _ := url.ParseQuery(tt.q)
		_, e := parseOutputQuery(v)
		switch {
		case tt.want == "" && e != nil:
			t.Errorf("%q: %v", tt.q, e)
		case tt.want != "" && (e == nil || !strings.Contains(e.Body.Message, tt.want)):
			t.Errorf("%q: got %v, want %q", tt.q, e, tt.want)
		}
	}
}

func TestSessionInputBytes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		req  agentapi.SessionInputRequest
		want string
	}{
		{agentapi.SessionInputRequest{Text: "yes"}, "yes\n"},
		{agentapi.SessionInputRequest{}, "\n"},
		{agentapi.SessionInputRequest{Text: "abc", NoNewline: true, Control: agentapi.ControlEOF}, "abc\x04"},
		{agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt}, "\x03"},
		{agentapi.SessionInputRequest{Text: "x", Control: agentapi.ControlSuspend}, "x\n\x1a"},
	} {
		if got := string(inputBytes(tt.req)); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.req, got, tt.want)
		}
	}
}

func TestSessionStatusLines(t *testing.T) {
	t.Parallel()
	const tok = "abc123"
	for _, tt := range []struct {
		line string
		code int
		ok   bool
	}{
		{"abc123 0", 0, true},
		{"abc123 255", 255, true},
		{"abc123 -", -1, true},
		{"abc123 256", 0, false},
		{"abc123 -1", 0, false},
		{"abc123 1 ", 0, false},
		{"abc1234 0", 0, false},
		{"xabc123 0", 0, false},
		{"abc123", 0, false},
	} {
		code, ok := parseStatus([]byte(tt.line), tok)
		if ok != tt.ok || (ok && code != tt.code) {
			t.Errorf("%q: %d %v", tt.line, code, ok)
		}
	}
}

// The terminal's share of a command ends at the marker, wherever reads
// split it.
func TestSessionTTYRouter(t *testing.T) {
	t.Parallel()
	marker := []byte("BERTH-SYNC-XYZ")
	stream := []byte("before BERTH-SYNC-X and BERTH-SYNC-XY too" + string(marker) + "after")
	for split := 1; split <= len(stream); split++ {
		c := newSessionCmd("x", 1<<20)
		r := ttyRouter{target: c, marker: marker, synced: make(chan struct{})}
		synced := r.synced
		var got []byte
		for i := 0; i < len(stream); i += split {
			data, target := r.route(stream[i:min(i+split, len(stream))])
			if target == c {
				got = append(got, data...)
			}
		}
		if want := "before BERTH-SYNC-X and BERTH-SYNC-XY too"; string(got) != want {
			t.Errorf("split %d: %q", split, got)
		}
		select {
		case <-synced:
		default:
			t.Errorf("split %d: not synced", split)
		}
		if r.target != nil {
			t.Errorf("split %d: still routing after the marker", split)
		}
	}
}

func TestSessionParseStat(t *testing.T) {
	t.Parallel()
	state, sid, ok := parseStat([]byte("123 (a) b (c)) S 1 120 99 0 -1 4194560"))
	if !ok || state != 'S' || sid != 99 {
		t.Errorf("got %c %d %v", state, sid, ok)
	}
	if _, _, ok := parseStat([]byte("garbage")); ok {
		t.Error("garbage parsed")
	}
}

// FuzzSessionRequests feeds arbitrary bodies to the session decoders: no
// panic, and what passes holds to the rules.
func FuzzSessionRequests(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","shell":"sh","cwd":"x","env":{"A":"b"}}`,
		`{"command":"echo hi","timeout_ms":5,"no_output_timeout_ms":1,"max_output_bytes":9,"create":{"cwd":"/"}}`,
		`{"text":"hello\nworld","no_newline":true,"control":"C-d","timeout_ms":3}`,
		`{"text":"\u0003"}`, `{"name":"-"}`, `[]`, `{}`, `{"command":""}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if req, e := decodeSessionCreateRequest(bytes.NewReader(body), 1<<16); e == nil {
			if checkSessionName(req.Name) != nil || strings.ContainsRune(req.Cwd, 0) {
				t.Errorf("create accepted %+v", req)
			}
		} else if e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge {
			t.Errorf("create: status %d", e.Status)
		}
		if req, e := decodeSessionExecRequest(bytes.NewReader(body), 1<<16); e == nil {
			if req.TimeoutMS < 0 || req.NoOutputTimeoutMS < 0 || req.MaxOutputBytes < 0 || strings.ContainsRune(req.Command, 0) ||
				(req.Create != nil && req.Command == "") {
				t.Errorf("exec accepted %+v", req)
			}
		}
		if req, e := decodeSessionInputRequest(bytes.NewReader(body), 1<<16); e == nil {
			b := inputBytes(req)
			for i, c := range b {
				if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && !(i == len(b)-1 && req.Control != "") {
					t.Errorf("input %+v types control byte %#x", req, c)
				}
			}
			for _, line := range bytes.Split(b, []byte("\n")) {
				if len(line) > agentapi.MaxInputLine+1 {
					t.Errorf("input has a line of %d bytes", len(line))
				}
			}
		}
	})
}
