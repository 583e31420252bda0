package agent

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

// bgMaxSignal is the highest signal number on Linux (SIGRTMAX).
const bgMaxSignal = 64

// bgProcessRequestWire mirrors agentapi.ProcessRequest (a test keeps the
// two in step).
type bgProcessRequestWire struct {
	Argv        []string          `json:"argv"`
	Command     string            `json:"command"`
	Cwd         string            `json:"cwd"`
	Env         map[string]string `json:"env"`
	Name        string            `json:"name"`
	BufferBytes int64             `json:"buffer_bytes"`
}

// decodeProcessRequest decodes and validates a ProcessRequest, and returns
// it with the ExecRequest that resolves it against the sandbox.
func decodeProcessRequest(r io.Reader, limit int64) (agentapi.ProcessRequest, agentapi.ExecRequest, *apiError) {
	var wire bgProcessRequestWire
	if e := decodeJSON(r, limit, &wire); e != nil {
		return agentapi.ProcessRequest{}, agentapi.ExecRequest{}, e
	}
	req := agentapi.ProcessRequest(wire)
	ex := agentapi.ExecRequest{Argv: req.Argv, Command: req.Command, Cwd: req.Cwd, Env: req.Env}
	if e := validateExecRequest(ex); e != nil {
		return agentapi.ProcessRequest{}, agentapi.ExecRequest{}, e
	}
	if req.Name != "" {
		if err := bgCheckName(req.Name); err != "" {
			return agentapi.ProcessRequest{}, agentapi.ExecRequest{}, badRequest(`"name" %q %s`, req.Name, err)
		}
	}
	if req.BufferBytes < 0 || req.BufferBytes > agentapi.MaxProcessBufferBytes {
		return agentapi.ProcessRequest{}, agentapi.ExecRequest{}, badRequest(
			`"buffer_bytes" is %d; use 0 for the default (%d) or at most %d`,
			req.BufferBytes, agentapi.DefaultProcessBufferBytes, agentapi.MaxProcessBufferBytes)
	}
	return req, ex, nil
}

// bgCheckName says what is wrong with a process name, or "" when nothing.
// A name never looks like an id (ids are decimal), so a reference is
// either one or the other.
func bgCheckName(name string) string {
	if len(name) > 64 {
		return "is longer than 64 bytes"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-'):
		case i == 0:
			return "must start with a letter or '_'"
		default:
			return "may contain only letters, digits, '_', '.' and '-'"
		}
	}
	if name == "" {
		return "is empty"
	}
	return ""
}

// bgIsID reports whether ref is a process id (decimal) rather than a name.
func bgIsID(ref string) bool {
	if ref == "" {
		return false
	}
	for i := 0; i < len(ref); i++ {
		if ref[i] < '0' || ref[i] > '9' {
			return false
		}
	}
	return true
}

// decodeSignalRequest decodes {"signal": ...}: a name, a number as a
// string, or a JSON number; absent means SIGTERM.
func decodeSignalRequest(r io.Reader, limit int64) (syscall.Signal, *apiError) {
	var wire struct {
		Signal json.RawMessage `json:"signal"`
	}
	if e := decodeJSON(r, limit, &wire); e != nil {
		return 0, e
	}
	return bgSignalFromJSON(wire.Signal)
}

// bgSignalFromJSON reads the raw "signal" field.
func bgSignalFromJSON(raw json.RawMessage) (syscall.Signal, *apiError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return syscall.SIGTERM, nil
	}
	var s string
	switch c := raw[0]; {
	case c == '"':
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, badRequest(`"signal" is not a valid JSON string`)
		}
	case c == '-' || c >= '0' && c <= '9':
		s = string(raw)
	default:
		return 0, badRequest(`"signal" must be a string (a name like "SIGTERM") or a number, not %s`, raw)
	}
	sig, msg := parseSignal(s)
	if msg != "" {
		return 0, badRequest(`"signal" %s`, msg)
	}
	return sig, nil
}

// parseSignal reads a signal name ("SIGTERM", "TERM", "term") or number
// ("15"), 1-64. It returns what is wrong, or "".
func parseSignal(s string) (syscall.Signal, string) {
	if s == "" {
		return syscall.SIGTERM, ""
	}
	if s[0] == '-' || s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > bgMaxSignal {
			return 0, "is " + strconv.Quote(s) + "; a signal number is 1-" + strconv.Itoa(bgMaxSignal)
		}
		return syscall.Signal(n), ""
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, ""
	}
	return 0, "is " + strconv.Quote(s) + ", not a signal name (like SIGTERM, TERM, KILL) or number (like 15)"
}

// bgQueryInt reads a non-negative whole number from query parameter name;
// absent means 0.
func bgQueryInt(q url.Values, name string) (int64, *apiError) {
	v := q.Get(name)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("query parameter %q must be a whole number, 0 or more, not %q", name, v)
	}
	return n, nil
}

// bgQueryBool reads a flag from query parameter name: 1/true or 0/false;
// absent means false.
func bgQueryBool(q url.Values, name string) (bool, *apiError) {
	switch v := q.Get(name); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, badRequest("query parameter %q must be 1, true, 0 or false, not %q", name, v)
	}
}

// bgQueryTimeout reads timeout_ms: absent or 0 means no timeout.
func bgQueryTimeout(q url.Values) (time.Duration, *apiError) {
	ms, e := bgQueryInt(q, "timeout_ms")
	if e != nil {
		return 0, e
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		ms = math.MaxInt64 / int64(time.Millisecond)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// decodeStdinRequest decodes a StdinRequest with data left raw, so that bad
// base64 gives an error naming the field.
func decodeStdinRequest(r io.Reader, limit int64) (agentapi.StdinRequest, *apiError) {
	var wire struct {
		Data json.RawMessage `json:"data"`
		EOF  bool            `json:"eof"`
	}
	if e := decodeJSON(r, limit, &wire); e != nil {
		return agentapi.StdinRequest{}, e
	}
	req := agentapi.StdinRequest{EOF: wire.EOF}
	if len(wire.Data) > 0 {
		if err := json.Unmarshal(wire.Data, &req.Data); err != nil {
			return agentapi.StdinRequest{}, badRequest(`"data" must be a base64 string: %s`, strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	return req, nil
}
