package agent

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

// The client's handling of answers a real agent rarely gives: a follow
// stream cut before its exit event, an error event, a refused upgrade.
func TestBgClientEdgeAnswers(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/processes/cut/output", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"stdout","offset":0,"data":"aGkK"}`+"\n")
	})
	mux.HandleFunc("GET /api/v1/processes/failed/output", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-ndjson")
		io.WriteString(w, `{"type":"error","offset":0,"error":{"code":"internal","message":"reap failed"}}`+"\n")
	})
	mux.HandleFunc("GET /api/v1/pty", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"code":"unauthorized","message":"header X-Session-API-Key is missing"}`)
	})
	mux.HandleFunc("GET /api/v1/processes", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
		io.WriteString(w, "<html>proxy says no</html>")
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	c := agentapi.New(ts.URL, testKey, ts.Client())

	var got []byte
	_, err := c.ProcessOutput(t.Context(), "cut", 0, true, func(ev agentapi.OutputEvent) error {
		got = append(got, ev.Data...)
		return nil
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) || string(got) != "hi\n" {
		t.Errorf("cut stream: %v, got %q", err, got)
	}
	_, err = c.ProcessOutput(t.Context(), "failed", 0, true, nil)
	var e *agentapi.Error
	if !errors.As(err, &e) || e.Message != "reap failed" {
		t.Errorf("error event: %v", err)
	}
	_, err = c.DialPTY(t.Context(), agentapi.PTYOptions{})
	bgAPIError(t, err, 401, agentapi.CodeUnauthorized, "missing")
	_, err = c.Processes(t.Context())
	bgAPIError(t, err, 502, agentapi.CodeInternal, "proxy says no")
}
