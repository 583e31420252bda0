package agentapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// TimeoutExitCode is the exit code a CLI reports for a command killed by
// its timeout, as timeout(1) does.
const TimeoutExitCode = 124

// ExitCode is the exit code a CLI should exit with for a finished command:
// TimeoutExitCode when it timed out, else the command's own code (128+n
// when a signal n killed it).
func ExitCode(exit ExecEvent) int {
	if exit.TimedOut {
		return TimeoutExitCode
	}
	return exit.ExitCode
}

// APIError is a non-2xx answer of the agent: its HTTP status and body.
// errors.As also finds the *Error inside it.
type APIError struct {
	Status int
	Err    Error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("agent answered %d %s", e.Status, e.Err.Error())
}

func (e *APIError) Unwrap() error { return &e.Err }

// Client calls one sandbox's agent. It is safe for concurrent use.
type Client struct {
	base string
	key  string
	hc   *http.Client
}

// New returns a client of the agent at baseURL (e.g. "http://127.0.0.1:30001",
// or "unix:///path/agent.sock" for a sandbox without a network) that sends
// key on every call. A nil hc means a client with a keep-alive transport, no
// proxy and no overall timeout: deadlines come from each call's ctx, so long
// execs are never cut. A unix socket gets a transport of its own.
func New(baseURL, key string, hc *http.Client) *Client {
	if path, ok := strings.CutPrefix(baseURL, "unix://"); ok {
		var d net.Dialer
		t := &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) },
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}
		return &Client{base: "http://sandbox", key: key, hc: &http.Client{Transport: t}}
	}
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // the agent is a direct neighbour, never behind a proxy
		t.MaxIdleConnsPerHost = 16
		t.IdleConnTimeout = 90 * time.Second
		hc = &http.Client{Transport: t}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), key: key, hc: hc}
}

// Alive returns nil once the agent serves requests.
func (c *Client) Alive(ctx context.Context) error {
	return c.getStatus(ctx, PathAlive)
}

// Health returns nil while the agent is healthy (not shutting down).
func (c *Client) Health(ctx context.Context) error {
	return c.getStatus(ctx, PathHealth)
}

func (c *Client) getStatus(ctx context.Context, path string) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	return nil
}

// ServerInfo returns the agent's uptime, idle time, user and workdir.
func (c *Client) ServerInfo(ctx context.Context) (ServerInfo, error) {
	var info ServerInfo
	err := c.callJSON(ctx, http.MethodGet, PathServerInfo, nil, &info)
	return info, err
}

// callJSON makes one call and decodes its JSON answer into dst.
func (c *Client) callJSON(ctx context.Context, method, path string, body []byte, dst any) error {
	resp, err := c.do(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		return fmt.Errorf("agent %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// Exec runs req and returns its exit event. Every event, the exit event
// included, goes to onEvent (if not nil) as it arrives; an error from
// onEvent stops the call and is returned, and the agent then kills the
// command, as it does when ctx ends. A command the agent cannot start
// gives an *APIError with status 400.
func (c *Client) Exec(ctx context.Context, req ExecRequest, onEvent func(ExecEvent) error) (ExecEvent, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ExecEvent{}, fmt.Errorf("agent exec: encode request: %w", err)
	}
	resp, err := c.do(ctx, http.MethodPost, PathExec, body)
	if err != nil {
		return ExecEvent{}, err
	}
	// Closing without draining: when we stop early, the agent sees the
	// connection go and kills the command.
	defer resp.Body.Close()
	var exit ExecEvent
	err = streamEvents(ctx, resp.Body, "exec", func(ev ExecEvent) (bool, error) {
		if onEvent != nil {
			if err := onEvent(ev); err != nil {
				return true, err
			}
		}
		switch ev.Type {
		case EventExit:
			exit = ev
			return true, nil
		case EventError:
			return true, fmt.Errorf("agent exec: %w", eventError(ev.Error))
		}
		return false, nil
	})
	if err != nil {
		return ExecEvent{}, err
	}
	return exit, nil
}

// streamEvents decodes an NDJSON stream of events of type E and hands each
// to handle until handle says the stream is done (its final event) or
// fails. A stream that ends before that is an error saying so, or ctx's
// error when ctx ended.
func streamEvents[E any](ctx context.Context, r io.Reader, what string, handle func(E) (done bool, err error)) error {
	dec := json.NewDecoder(r)
	for {
		var ev E
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = ctxErr
			}
			return fmt.Errorf("agent %s: stream ended before the exit event: %w", what, err)
		}
		if done, err := handle(ev); done || err != nil {
			return err
		}
	}
}

// eventError is the error an error event carries.
func eventError(e *Error) *Error {
	if e == nil {
		return &Error{Code: CodeInternal, Message: "error event without details"}
	}
	return e
}

// ExecOutput runs req and returns all of its output with the exit event.
func (c *Client) ExecOutput(ctx context.Context, req ExecRequest) (stdout, stderr []byte, exit ExecEvent, err error) {
	var out, errb bytes.Buffer
	exit, err = c.Exec(ctx, req, func(ev ExecEvent) error {
		switch ev.Type {
		case EventStdout:
			out.Write(ev.Data)
		case EventStderr:
			errb.Write(ev.Data)
		}
		return nil
	})
	return out.Bytes(), errb.Bytes(), exit, err
}

// do sends one request with the key and turns a non-2xx answer into an
// *APIError.
func (c *Client) do(ctx context.Context, method, path string, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	req.Header.Set(HeaderKey, c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer drainClose(resp.Body)
	return nil, fmt.Errorf("agent %s %s: %w", method, path, readAPIError(resp))
}

// readAPIError reads an error answer; a body that is not an Error (a proxy's
// page, say) still gives a useful message.
func readAPIError(resp *http.Response) *APIError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(raw, &e.Err) == nil && e.Err.Code != "" {
		return e
	}
	e.Err = Error{Code: codeForStatus(resp.StatusCode), Message: strings.TrimSpace(string(raw))}
	if e.Err.Message == "" {
		e.Err.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return CodeBadRequest
	case http.StatusUnauthorized:
		return CodeUnauthorized
	case http.StatusForbidden:
		return CodeForbidden
	case http.StatusNotFound:
		return CodeNotFound
	case http.StatusConflict:
		return CodeConflict
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeBusy
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	case http.StatusInsufficientStorage:
		return CodeInsufficientStorage
	}
	return CodeInternal
}

// drainClose reads a little of what is left so the connection can be
// reused, then closes the body.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}
