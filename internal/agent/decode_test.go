package agent

import (
	"bytes"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/berth-dev/berth/internal/agentapi"
)

// The wire mirror must have exactly the JSON fields of ExecRequest, of the
// same types (stdin aside).
func TestExecRequestWireMatchesContract(t *testing.T) {
	fields := func(typ reflect.Type) map[string]reflect.Type {
		m := map[string]reflect.Type{}
		for f := range typ.Fields() {
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			m[name] = f.Type
		}
		return m
	}
	api := fields(reflect.TypeFor[agentapi.ExecRequest]())
	wire := fields(reflect.TypeFor[execRequestWire]())
	for name, typ := range api {
		w, ok := wire[name]
		if !ok {
			t.Errorf("execRequestWire lacks %q", name)
			continue
		}
		if name != "stdin" && w != typ {
			t.Errorf("field %q: wire type %v, contract type %v", name, w, typ)
		}
	}
	for name := range wire {
		if _, ok := api[name]; !ok {
			t.Errorf("execRequestWire has %q, which ExecRequest lacks", name)
		}
	}
}

func TestDecodeExecRequestValid(t *testing.T) {
	req, e := decodeExecRequest(strings.NewReader(`{
		"argv": ["ls", "-l"], "cwd": "sub", "env": {"A": "1"},
		"stdin": "aGVsbG8=", "timeout_ms": 1500, "max_output_bytes": 10
	}`), 1<<20)
	if e != nil {
		t.Fatal(e)
	}
	want := agentapi.ExecRequest{
		Argv: []string{"ls", "-l"}, Cwd: "sub", Env: map[string]string{"A": "1"},
		Stdin: []byte("hello"), TimeoutMS: 1500, MaxOutputBytes: 10,
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("got %+v, want %+v", req, want)
	}
}

// A body that arrives in tiny pieces decodes the same.
func TestDecodeExecRequestSlowReader(t *testing.T) {
	body := `{"command":"echo hi","stdin":null}`
	req, e := decodeExecRequest(iotest.OneByteReader(strings.NewReader(body)), 1<<10)
	if e != nil || req.Command != "echo hi" {
		t.Fatalf("got %+v, %v", req, e)
	}
}

func TestLimitReaderExactLimit(t *testing.T) {
	body := `{"command":"x"}`
	if _, e := decodeExecRequest(strings.NewReader(body), int64(len(body))); e != nil {
		t.Errorf("a body of exactly the limit: %v", e)
	}
	_, e := decodeExecRequest(strings.NewReader(body+" "), int64(len(body)))
	if e == nil || e.Status != http.StatusRequestEntityTooLarge {
		t.Errorf("a body one byte over the limit: %v", e)
	}
}

func FuzzDecodeExecRequest(f *testing.F) {
	for _, seed := range []string{
		``, `{}`, `null`, `[]`, `"x"`, `{"argv":["ls"]}`, `{"command":"echo hi"}`,
		`{"argv":["ls"],"command":"x"}`, `{"argv":[""]}`, `{"timeout_ms":-1,"command":"x"}`,
		`{"command":"x","env":{"A":"b","BERTH_AGENT_KEY":"k"}}`, `{"command":"x","stdin":"aGk="}`,
		`{"command":"x","stdin":"!!"}`, `{"command":"x"} trailing`, `{"argv":["a\u0000"]}`,
		`{"argv":["ls"],"cwd":"../..","max_output_bytes":1e3}`, `{"unknown":1}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const limit = 4 << 10
		req, e := decodeExecRequest(bytes.NewReader(body), limit)
		if e != nil {
			if e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d for a caller's mistake: %v", e.Status, e)
			}
			if e.Body.Code == "" || e.Body.Message == "" {
				t.Fatalf("error without code or message: %+v", e)
			}
			if e.Status == http.StatusRequestEntityTooLarge && len(body) <= limit {
				t.Fatalf("413 for %d bytes", len(body))
			}
			return
		}
		if len(body) > limit {
			t.Fatalf("accepted %d bytes over a limit of %d", len(body), limit)
		}
		if (len(req.Argv) > 0) == (req.Command != "") {
			t.Fatalf("accepted argv %q with command %q", req.Argv, req.Command)
		}
		if len(req.Argv) > 0 && req.Argv[0] == "" {
			t.Fatal("accepted an empty program")
		}
		if req.TimeoutMS < 0 || req.MaxOutputBytes < 0 {
			t.Fatalf("accepted negative limits: %+v", req)
		}
		for _, s := range append(slices.Clone(req.Argv), req.Command, req.Cwd) {
			if strings.IndexByte(s, 0) >= 0 {
				t.Fatalf("accepted a NUL byte: %q", s)
			}
		}
		for k, v := range req.Env {
			if k == "" || strings.ContainsAny(k, "=\x00") || strings.IndexByte(v, 0) >= 0 || isReservedEnv(k) {
				t.Fatalf("accepted env %q=%q", k, v)
			}
		}
		if validateExecRequest(req) != nil {
			t.Fatal("decoded request does not validate")
		}
	})
}
