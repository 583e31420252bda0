package agent

import (
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
)

// checkSessionName checks a session name: it is a path segment and a
// directory name, so only a safe alphabet.
func checkSessionName(name string) *apiError {
	ok := len(name) >= 1 && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '.' || c == '_' || c == '-')
	}
	if !ok {
		return badRequest("session name %q is not valid: use %s", name, agentapi.SessionNameRules)
	}
	return nil
}

// checkSessionOptions checks what can be checked without the file system;
// field prefixes the names in messages ("create." inside an exec request).
func checkSessionOptions(o agentapi.SessionOptions, field string) *apiError {
	switch {
	case strings.IndexByte(o.Shell, 0) >= 0:
		return badRequest(`"%sshell" contains a NUL byte`, field)
	case strings.IndexByte(o.Cwd, 0) >= 0:
		return badRequest(`"%scwd" contains a NUL byte`, field)
	}
	for k, v := range o.Env {
		switch {
		case k == "":
			return badRequest(`"%senv" has an empty variable name`, field)
		case strings.ContainsAny(k, "=\x00"):
			return badRequest(`"%senv" name %q contains "=" or a NUL byte`, field, k)
		case strings.IndexByte(v, 0) >= 0:
			return badRequest(`"%senv" variable %q contains a NUL byte`, field, k)
		case isReservedEnv(k):
			return badRequest(`"%senv" may not set %s: it belongs to the agent`, field, k)
		}
	}
	return nil
}

func checkTimeouts(timeoutMS, noOutputMS int64) *apiError {
	switch {
	case timeoutMS < 0:
		return badRequest(`"timeout_ms" is %d; use 0 for no timeout or a positive number of milliseconds`, timeoutMS)
	case noOutputMS < 0:
		return badRequest(`"no_output_timeout_ms" is %d; use 0 for none or a positive number of milliseconds`, noOutputMS)
	}
	return nil
}

func decodeSessionCreateRequest(r io.Reader, limit int64) (agentapi.SessionCreateRequest, *apiError) {
	var req agentapi.SessionCreateRequest
	if e := decodeJSON(r, limit, &req); e != nil {
		return req, e
	}
	if e := checkSessionName(req.Name); e != nil {
		return req, e
	}
	return req, checkSessionOptions(req.SessionOptions, "")
}

func decodeSessionExecRequest(r io.Reader, limit int64) (agentapi.SessionExecRequest, *apiError) {
	var req agentapi.SessionExecRequest
	if e := decodeJSON(r, limit, &req); e != nil {
		return req, e
	}
	switch {
	case strings.IndexByte(req.Command, 0) >= 0:
		return req, badRequest(`"command" contains a NUL byte`)
	case req.MaxOutputBytes < 0:
		return req, badRequest(`"max_output_bytes" is %d; use 0 for the agent's default or a positive number`, req.MaxOutputBytes)
	}
	if e := checkTimeouts(req.TimeoutMS, req.NoOutputTimeoutMS); e != nil {
		return req, e
	}
	if req.Create != nil {
		if req.Command == "" {
			return req, badRequest(`"create" needs a "command": an empty command only reads the output of a running one`)
		}
		return req, checkSessionOptions(*req.Create, "create.")
	}
	return req, nil
}

func decodeSessionInputRequest(r io.Reader, limit int64) (agentapi.SessionInputRequest, *apiError) {
	var req agentapi.SessionInputRequest
	if e := decodeJSON(r, limit, &req); e != nil {
		return req, e
	}
	switch req.Control {
	case "", agentapi.ControlInterrupt, agentapi.ControlEOF, agentapi.ControlSuspend:
	default:
		return req, badRequest(`"control" is %q; use %q (interrupt), %q (end of input) or %q (suspend)`,
			req.Control, agentapi.ControlInterrupt, agentapi.ControlEOF, agentapi.ControlSuspend)
	}
	if req.NoNewline && req.Text == "" && req.Control == "" {
		return req, badRequest(`nothing to send: "text" is empty, "no_newline" is set and there is no "control"`)
	}
	line := 0
	for i := 0; i < len(req.Text); i++ {
		c := req.Text[i]
		switch {
		case c == '\n' || c == '\r':
			line = 0
			continue
		case c < 0x20 && c != '\t' || c == 0x7f:
			return req, badRequest(`"text" has control character 0x%02x at byte %d; only tab and newline may be typed, `+
				`and Ctrl-C, Ctrl-D, Ctrl-Z go in "control"`, c, i)
		}
		line++
		if line > agentapi.MaxInputLine {
			return req, badRequest(`"text" has a line longer than %d bytes, more than a terminal takes in one line`, agentapi.MaxInputLine)
		}
	}
	return req, checkTimeouts(req.TimeoutMS, req.NoOutputTimeoutMS)
}

// parseOutputQuery reads the query of GET .../output.
func parseOutputQuery(q url.Values) (agentapi.SessionOutputRequest, *apiError) {
	var req agentapi.SessionOutputRequest
	for k, vs := range q {
		var dst *int64
		switch k {
		case "timeout_ms":
			dst = &req.TimeoutMS
		case "no_output_timeout_ms":
			dst = &req.NoOutputTimeoutMS
		default:
			return req, badRequest("unknown query parameter %q; use timeout_ms and no_output_timeout_ms", k)
		}
		if len(vs) != 1 {
			return req, badRequest("query parameter %q is given %d times", k, len(vs))
		}
		n, err := strconv.ParseInt(vs[0], 10, 64)
		if err != nil {
			return req, badRequest("query parameter %q is %q, not a whole number", k, vs[0])
		}
		*dst = n
	}
	return req, checkTimeouts(req.TimeoutMS, req.NoOutputTimeoutMS)
}

// inputBytes is what a request types on the terminal.
func inputBytes(req agentapi.SessionInputRequest) []byte {
	b := []byte(req.Text)
	if !req.NoNewline && (req.Text != "" || req.Control == "") {
		b = append(b, '\n')
	}
	switch req.Control {
	case agentapi.ControlInterrupt:
		b = append(b, ctrlC)
	case agentapi.ControlEOF:
		b = append(b, ctrlD)
	case agentapi.ControlSuspend:
		b = append(b, ctrlZ)
	}
	return b
}

// describeInput is a short label of an input request for logs.
func describeInput(req agentapi.SessionInputRequest) string {
	return fmt.Sprintf("text %s control %q", describeText(req.Text), req.Control)
}
