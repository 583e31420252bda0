package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fake serves handler and returns a client of it.
func fake(t *testing.T, handler http.HandlerFunc) *Client {
	t.Helper()
	ts := httptest.NewServer(handler)
	t.Cleanup(ts.Close)
	return New(ts.URL+"/", "the-key", ts.Client())
}

func ndjson(w http.ResponseWriter, events ...string) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	for _, e := range events {
		io.WriteString(w, e+"\n")
	}
}

func TestExecStreamsEventsAndReturnsExit(t *testing.T) {
	var gotReq ExecRequest
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != PathExec {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if r.Header.Get(HeaderKey) != "the-key" {
			t.Errorf("key header = %q", r.Header.Get(HeaderKey))
		}
		if err := json.NewDecoder(r.Body).Decode(&gotReq); err != nil {
			t.Error(err)
		}
		ndjson(w,
			`{"type":"start","pid":42}`,
			`{"type":"stdout","data":"aGk="}`,
			`{"type":"stderr","data":"b29wcw=="}`,
			`{"type":"exit","exit_code":3,"duration_ms":5}`)
	})
	var types []string
	exit, err := c.Exec(t.Context(), ExecRequest{Argv: []string{"x"}, Stdin: []byte{0, 1}}, func(ev ExecEvent) error {
		types = append(types, ev.Type)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if exit.Type != EventExit || exit.ExitCode != 3 || exit.DurationMS != 5 {
		t.Errorf("exit = %+v", exit)
	}
	if strings.Join(types, ",") != "start,stdout,stderr,exit" {
		t.Errorf("events = %v", types)
	}
	if gotReq.Argv[0] != "x" || string(gotReq.Stdin) != "\x00\x01" {
		t.Errorf("request = %+v", gotReq)
	}

	stdout, stderr, exit, err := c.ExecOutput(t.Context(), ExecRequest{Command: "x"})
	if err != nil || string(stdout) != "hi" || string(stderr) != "oops" || exit.ExitCode != 3 {
		t.Errorf("ExecOutput = %q, %q, %+v, %v", stdout, stderr, exit, err)
	}
}

func TestExecErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		check   func(t *testing.T, err error)
	}{
		{
			name: "agent error body",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"code":"bad_request","message":"program \"nope\" not found"}`)
			},
			check: func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 400 || ae.Err.Code != CodeBadRequest || !strings.Contains(ae.Err.Message, "nope") {
					t.Errorf("err = %#v", err)
				}
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeBadRequest {
					t.Errorf("errors.As *Error = %v", e)
				}
			},
		},
		{
			name: "not JSON (a proxy page)",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "bad gateway", http.StatusBadGateway)
			},
			check: func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 502 || ae.Err.Code != CodeInternal || ae.Err.Message != "bad gateway" {
					t.Errorf("err = %#v", err)
				}
			},
		},
		{
			name: "stream cut before exit",
			handler: func(w http.ResponseWriter, r *http.Request) {
				ndjson(w, `{"type":"start","pid":1}`)
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("err = %v, want io.ErrUnexpectedEOF", err)
				}
			},
		},
		{
			name: "error event",
			handler: func(w http.ResponseWriter, r *http.Request) {
				ndjson(w, `{"type":"error","error":{"code":"internal","message":"wait failed"}}`)
			},
			check: func(t *testing.T, err error) {
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeInternal || e.Message != "wait failed" {
					t.Errorf("err = %v", err)
				}
			},
		},
		{
			name: "garbage line",
			handler: func(w http.ResponseWriter, r *http.Request) {
				ndjson(w, `{"type":"start","pid":1}`, `not json`)
			},
			check: func(t *testing.T, err error) {
				if err == nil || !strings.Contains(err.Error(), "before the exit event") {
					t.Errorf("err = %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake(t, tt.handler)
			exit, err := c.Exec(t.Context(), ExecRequest{Argv: []string{"x"}}, nil)
			if err == nil {
				t.Fatalf("no error; exit %+v", exit)
			}
			tt.check(t, err)
		})
	}
}

func TestExecCallbackErrorStops(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		ndjson(w, `{"type":"start","pid":1}`, `{"type":"stdout","data":"aGk="}`, `{"type":"exit"}`)
	})
	stop := errors.New("stop")
	n := 0
	_, err := c.Exec(t.Context(), ExecRequest{Argv: []string{"x"}}, func(ev ExecEvent) error {
		n++
		if ev.Type == EventStdout {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("err = %v after %d events, want stop after 2", err, n)
	}
}

func TestExecContextCancelled(t *testing.T) {
	release := make(chan struct{})
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		ndjson(w, `{"type":"start","pid":1}`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	ctx, cancel := context.WithCancel(t.Context())
	_, err := c.Exec(ctx, ExecRequest{Argv: []string{"x"}}, func(ev ExecEvent) error {
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestAliveHealthServerInfo(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathAlive:
			io.WriteString(w, `{"status":"ok"}`)
		case PathHealth:
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `{"status":"shutting down"}`)
		case PathServerInfo:
			io.WriteString(w, `{"version":"v1","uptime_seconds":2.5,"user_id":1000,"workdir":"/workspace"}`)
		default:
			http.NotFound(w, r)
		}
	})
	if err := c.Alive(t.Context()); err != nil {
		t.Errorf("Alive = %v", err)
	}
	var ae *APIError
	if err := c.Health(t.Context()); !errors.As(err, &ae) || ae.Status != 503 || ae.Err.Code != CodeUnavailable {
		t.Errorf("Health = %v", err)
	}
	info, err := c.ServerInfo(t.Context())
	if err != nil || info.Version != "v1" || info.UptimeSeconds != 2.5 || info.UserID != 1000 || info.Workdir != "/workspace" {
		t.Errorf("ServerInfo = %+v, %v", info, err)
	}
}

func TestExitCode(t *testing.T) {
	tests := []struct {
		ev   ExecEvent
		want int
	}{
		{ExecEvent{ExitCode: 0}, 0},
		{ExecEvent{ExitCode: 2}, 2},
		{ExecEvent{ExitCode: 137, Signal: "SIGKILL"}, 137},
		{ExecEvent{ExitCode: 137, Signal: "SIGKILL", TimedOut: true}, TimeoutExitCode},
	}
	for _, tt := range tests {
		if got := ExitCode(tt.ev); got != tt.want {
			t.Errorf("ExitCode(%+v) = %d, want %d", tt.ev, got, tt.want)
		}
	}
}

func TestNewDefaultClient(t *testing.T) {
	c := New("http://127.0.0.1:1///", "k", nil)
	if c.base != "http://127.0.0.1:1" {
		t.Errorf("base = %q", c.base)
	}
	if c.hc.Timeout != 0 {
		t.Errorf("default client has an overall timeout %v", c.hc.Timeout)
	}
	tr, ok := c.hc.Transport.(*http.Transport)
	if !ok || tr.Proxy != nil || tr.DisableKeepAlives {
		t.Errorf("transport = %+v", c.hc.Transport)
	}
	// Nothing listens on port 1: a transport error, not an APIError.
	var ae *APIError
	if err := c.Alive(t.Context()); err == nil || errors.As(err, &ae) {
		t.Errorf("Alive = %v", err)
	}
	tr.CloseIdleConnections()
}
