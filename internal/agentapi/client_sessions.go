package agentapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// CreateSession starts a session's shell. A name whose shell runs already
// gives an *APIError with status 409 and code CodeExists.
func (c *Client) CreateSession(ctx context.Context, req SessionCreateRequest) (SessionInfo, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return SessionInfo{}, fmt.Errorf("agent create session: encode request: %w", err)
	}
	var info SessionInfo
	err = c.callJSON(ctx, http.MethodPost, PathSessions, body, &info)
	return info, err
}

// Sessions lists the sessions, sorted by name.
func (c *Client) Sessions(ctx context.Context) ([]SessionInfo, error) {
	var list SessionList
	if err := c.callJSON(ctx, http.MethodGet, PathSessions, nil, &list); err != nil {
		return nil, err
	}
	return list.Sessions, nil
}

// Session describes one session; an unknown name gives an *APIError with
// status 404.
func (c *Client) Session(ctx context.Context, name string) (SessionInfo, error) {
	var info SessionInfo
	err := c.callJSON(ctx, http.MethodGet, SessionPath(PathSession, name), nil, &info)
	return info, err
}

// DeleteSession kills a session: its shell and every process of it.
func (c *Client) DeleteSession(ctx context.Context, name string) error {
	resp, err := c.do(ctx, http.MethodDelete, SessionPath(PathSession, name), nil)
	if err != nil {
		return err
	}
	drainClose(resp.Body)
	return nil
}

// SessionExec runs req.Command in the named session (started first if need
// be) and returns the final event: an exit event, with Running set when the
// call timed out before the command ended. Every event, the final one
// included, goes to onEvent (if not nil) as it arrives; an error from
// onEvent stops the call and is returned. Leaving early (onEvent's error,
// ctx) does not stop the command: it runs on in the session.
func (c *Client) SessionExec(ctx context.Context, name string, req SessionExecRequest, onEvent func(SessionEvent) error) (SessionEvent, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return SessionEvent{}, fmt.Errorf("agent session exec: encode request: %w", err)
	}
	return c.sessionStream(ctx, http.MethodPost, SessionPath(PathSessionExec, name), body, onEvent)
}

// SessionInput sends text and/or a control to the command running in the
// named session, then streams its output as SessionExec does. With no
// command running it gives an *APIError with status 409 and code CodeIdle.
func (c *Client) SessionInput(ctx context.Context, name string, req SessionInputRequest, onEvent func(SessionEvent) error) (SessionEvent, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return SessionEvent{}, fmt.Errorf("agent session input: encode request: %w", err)
	}
	return c.sessionStream(ctx, http.MethodPost, SessionPath(PathSessionInput, name), body, onEvent)
}

// SessionOutput streams more output of the command running in the named
// session (or the rest of the last one, until its result has been read),
// as SessionExec does.
func (c *Client) SessionOutput(ctx context.Context, name string, req SessionOutputRequest, onEvent func(SessionEvent) error) (SessionEvent, error) {
	q := url.Values{}
	if req.TimeoutMS != 0 {
		q.Set("timeout_ms", strconv.FormatInt(req.TimeoutMS, 10))
	}
	if req.NoOutputTimeoutMS != 0 {
		q.Set("no_output_timeout_ms", strconv.FormatInt(req.NoOutputTimeoutMS, 10))
	}
	path := SessionPath(PathSessionOutput, name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return c.sessionStream(ctx, http.MethodGet, path, nil, onEvent)
}

// sessionStream reads a session stream up to its final event.
func (c *Client) sessionStream(ctx context.Context, method, path string, body []byte, onEvent func(SessionEvent) error) (SessionEvent, error) {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return SessionEvent{}, err
	}
	defer resp.Body.Close()
	var last SessionEvent
	err = streamEvents(ctx, resp.Body, method+" "+path, func(ev SessionEvent) (bool, error) {
		if onEvent != nil {
			if err := onEvent(ev); err != nil {
				return true, err
			}
		}
		switch ev.Type {
		case EventExit:
			last = ev
			return true, nil
		case EventError:
			return true, fmt.Errorf("agent %s %s: %w", method, path, eventError(ev.Error))
		}
		return false, nil
	})
	if err != nil {
		return SessionEvent{}, err
	}
	return last, nil
}

// ShellJoin quotes each argument for a POSIX shell and joins them with
// spaces, so that the shell sees exactly argv: ShellJoin([]string{"echo",
// "a b", "it's"}) is `echo 'a b' 'it'\”s'`. Words that need no quotes stay
// as they are.
func ShellJoin(argv []string) string {
	var b strings.Builder
	for i, a := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(ShellQuote(a))
	}
	return b.String()
}

// ShellQuote quotes s as one word for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, needsQuote) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// needsQuote reports whether r may be special to a shell somewhere in a
// word. Only letters, digits and -_./:,+@% go unquoted ('=' is quoted: a
// first word "A=b" would be an assignment).
func needsQuote(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-_./:,+@%", r)
}
