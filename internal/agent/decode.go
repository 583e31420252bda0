package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
)

// errBodyTooLarge is returned by limitReader past its limit.
var errBodyTooLarge = errors.New("request body too large")

// limitReader reads at most n bytes of r, then fails with errBodyTooLarge
// if r has more.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		// Probe one byte: a body of exactly the limit is fine.
		var b [1]byte
		n, err := l.r.Read(b[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// decodeJSON decodes exactly one JSON object from r into dst, rejecting
// unknown fields and bodies over limit bytes, and says what is wrong in
// words that name the field.
func decodeJSON(r io.Reader, limit int64, dst any) *apiError {
	dec := json.NewDecoder(&limitReader{r: r, n: limit})
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, limit)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if errors.Is(err, errBodyTooLarge) {
			return decodeError(err, limit)
		}
		return badRequest("request body has data after the JSON object")
	}
	return nil
}

func decodeError(err error, limit int64) *apiError {
	var (
		syntax *json.SyntaxError
		typ    *json.UnmarshalTypeError
	)
	switch {
	case errors.Is(err, errBodyTooLarge):
		return newAPIError(http.StatusRequestEntityTooLarge, agentapi.CodeTooLarge,
			"request body is larger than %d bytes", limit)
	case errors.Is(err, io.EOF):
		return badRequest("request body is empty; send a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("request body is truncated JSON")
	case errors.As(err, &syntax):
		return badRequest("request body is not valid JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		if typ.Field == "" {
			return badRequest("request body must be a JSON object, not %s", typ.Value)
		}
		return badRequest("field %q must be %s, not %s", typ.Field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return badRequest("unknown field %s", name)
	}
	return badRequest("request body: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonKind names a Go kind the way a JSON user thinks of it.
func jsonKind(kind string) string {
	switch kind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64", "float32", "float64":
		return "a number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a " + kind
}

// execRequestWire mirrors agentapi.ExecRequest (a test keeps the two in
// step) with stdin left raw, so that bad base64 gives an error naming the
// field; encoding/json's own error does not.
type execRequestWire struct {
	Argv           []string          `json:"argv"`
	Command        string            `json:"command"`
	Cwd            string            `json:"cwd"`
	Env            map[string]string `json:"env"`
	Stdin          json.RawMessage   `json:"stdin"`
	TimeoutMS      int64             `json:"timeout_ms"`
	MaxOutputBytes int64             `json:"max_output_bytes"`
}

// decodeExecRequest decodes and validates an ExecRequest.
func decodeExecRequest(r io.Reader, limit int64) (agentapi.ExecRequest, *apiError) {
	var wire execRequestWire
	if e := decodeJSON(r, limit, &wire); e != nil {
		return agentapi.ExecRequest{}, e
	}
	req := agentapi.ExecRequest{
		Argv:           wire.Argv,
		Command:        wire.Command,
		Cwd:            wire.Cwd,
		Env:            wire.Env,
		TimeoutMS:      wire.TimeoutMS,
		MaxOutputBytes: wire.MaxOutputBytes,
	}
	if len(wire.Stdin) > 0 {
		if err := json.Unmarshal(wire.Stdin, &req.Stdin); err != nil {
			return agentapi.ExecRequest{}, badRequest(`"stdin" must be a base64 string: %s`, strings.TrimPrefix(err.Error(), "json: "))
		}
	}
	if e := validateExecRequest(req); e != nil {
		return agentapi.ExecRequest{}, e
	}
	return req, nil
}

// validateExecRequest checks what can be checked without the file system.
func validateExecRequest(req agentapi.ExecRequest) *apiError {
	switch {
	case len(req.Argv) > 0 && req.Command != "":
		return badRequest(`set only one of "argv" and "command", not both`)
	case len(req.Argv) == 0 && req.Command == "":
		return badRequest(`set one of "argv" (a program and its arguments) or "command" (a shell string)`)
	case len(req.Argv) > 0 && req.Argv[0] == "":
		return badRequest(`"argv[0]", the program, is empty`)
	case strings.IndexByte(req.Command, 0) >= 0:
		return badRequest(`"command" contains a NUL byte`)
	case strings.IndexByte(req.Cwd, 0) >= 0:
		return badRequest(`"cwd" contains a NUL byte`)
	case req.TimeoutMS < 0:
		return badRequest(`"timeout_ms" is %d; use 0 for no timeout or a positive number of milliseconds`, req.TimeoutMS)
	case req.MaxOutputBytes < 0:
		return badRequest(`"max_output_bytes" is %d; use 0 for the agent's default or a positive number`, req.MaxOutputBytes)
	}
	for i, a := range req.Argv {
		if strings.IndexByte(a, 0) >= 0 {
			return badRequest(`"argv[%d]" contains a NUL byte`, i)
		}
	}
	for k, v := range req.Env {
		switch {
		case k == "":
			return badRequest(`"env" has an empty variable name`)
		case strings.ContainsAny(k, "=\x00"):
			return badRequest(`"env" name %q contains "=" or a NUL byte`, k)
		case strings.IndexByte(v, 0) >= 0:
			return badRequest(`"env" variable %q contains a NUL byte`, k)
		case isReservedEnv(k):
			return badRequest(`"env" may not set %s: it belongs to the agent`, k)
		}
	}
	return nil
}

// describe is a short label of a request for logs and errors.
func describe(req agentapi.ExecRequest) string {
	if len(req.Argv) > 0 {
		return fmt.Sprintf("argv %q", req.Argv)
	}
	if len(req.Command) > 80 {
		return fmt.Sprintf("command %q…", req.Command[:80])
	}
	return fmt.Sprintf("command %q", req.Command)
}
