package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Environment variables a CLI reads to talk to a server instead of Docker.
const (
	EnvHost  = "BERTH_HOST"  // the server's address: http://host:port, or host:port
	EnvToken = "BERTH_TOKEN" // the bearer token
)

// APIError is an error answer of the server: its status and body. errors.Is
// matches the sandbox sentinel of its code (sandbox.ErrNotFound for
// not_found...), so code written against sandbox.Runtime works unchanged.
type APIError struct {
	Status int
	Err    Error
}

func (e *APIError) Error() string {
	return fmt.Sprintf("berth server answered %d %s: %s", e.Status, e.Err.Code, e.Err.Message)
}

// Is reports whether the error's code is target's.
func (e *APIError) Is(target error) bool {
	s, ok := sentinels[e.Err.Code]
	return ok && s == target
}

// sentinels are the sandbox errors each code stands for.
var sentinels = map[string]error{
	CodeNotFound:     sandbox.ErrNotFound,
	CodeAmbiguous:    sandbox.ErrAmbiguous,
	CodeConflict:     sandbox.ErrConflict,
	CodeNotRunning:   sandbox.ErrNotRunning,
	CodeInvalidSpec:  sandbox.ErrInvalidSpec,
	CodeUnavailable:  sandbox.ErrUnavailable,
	CodeImage:        sandbox.ErrImage,
	CodeStartFailed:  sandbox.ErrStartFailed,
	CodeReadyTimeout: sandbox.ErrReadyTimeout,
}

// Client calls one berth server. It is safe for concurrent use.
type Client struct {
	base  string // http://host:port, no trailing slash
	token string
	hc    *http.Client // injects the token; no overall timeout
}

// New returns a client of the server at addr ("http://127.0.0.1:7474", or
// "127.0.0.1:7474") that sends token (if not empty) as a bearer token. A
// nil hc means a keep-alive client without proxy and without an overall
// timeout: deadlines come from each call's ctx, so long execs and follows
// are never cut.
func New(addr, token string, hc *http.Client) (*Client, error) {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("berth server address %q: want http://HOST:PORT or HOST:PORT", addr)
	}
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = 64
		t.IdleConnTimeout = 90 * time.Second
		hc = &http.Client{Transport: t}
	}
	base := hc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	authed := *hc
	authed.Transport = &bearer{base: base, host: u.Host, token: token}
	return &Client{base: strings.TrimRight(u.Scheme+"://"+u.Host+u.Path, "/"), token: token, hc: &authed}, nil
}

// FromEnv returns a client of the server BERTH_HOST names, with
// BERTH_TOKEN, and false when BERTH_HOST is not set.
func FromEnv(lookup func(string) (string, bool)) (*Client, bool, error) {
	host, ok := lookup(EnvHost)
	if !ok || host == "" {
		return nil, false, nil
	}
	token, _ := lookup(EnvToken)
	c, err := New(host, token, nil)
	return c, true, err
}

// BaseURL is the server's address, e.g. http://127.0.0.1:7474.
func (c *Client) BaseURL() string { return c.base }

// HTTPClient is the client's HTTP client: it adds the bearer token to
// every request to the server (and only to the server).
func (c *Client) HTTPClient() *http.Client { return c.hc }

// bearer adds the token to requests for the server's host.
type bearer struct {
	base  http.RoundTripper
	host  string
	token string
}

func (b *bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	if b.token == "" || r.URL.Host != b.host {
		return b.base.RoundTrip(r)
	}
	r2 := r.Clone(r.Context())
	r2.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r2)
}

// do sends a request and turns a non-2xx answer into an *APIError. in, if
// not nil, is sent as JSON.
func (c *Client) do(ctx context.Context, method, path string, in any, accept string) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("berth %s %s: encode request: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, fmt.Errorf("berth %s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("berth %s %s: %w", method, path, ctxErr)
		}
		return nil, fmt.Errorf("berth %s %s: %w: %w", method, path, sandbox.ErrUnavailable, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer drainClose(resp.Body)
	return nil, fmt.Errorf("berth %s %s: %w", method, path, readAPIError(resp))
}

// call sends a JSON request and decodes the JSON answer into out (if not nil).
func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.do(ctx, method, path, in, "application/json")
	if err != nil {
		return err
	}
	defer drainClose(resp.Body)
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("berth %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// readAPIError reads an error answer; a body that is not an Error (a
// proxy's page) still gives a useful one.
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
	case http.StatusMethodNotAllowed:
		return CodeMethodNotAllowed
	case http.StatusConflict:
		return CodeConflict
	case http.StatusRequestEntityTooLarge:
		return CodeTooLarge
	case http.StatusTooManyRequests:
		return CodeQuota
	case http.StatusBadGateway:
		return CodeAgent
	case http.StatusServiceUnavailable:
		return CodeUnavailable
	case http.StatusGatewayTimeout:
		return CodeReadyTimeout
	}
	return CodeInternal
}

// drainClose reads a little of what is left, so the connection can be
// reused, then closes the body.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 64<<10))
	body.Close()
}

// IsStatus reports whether err is an answer of the server with status.
func IsStatus(err error, status int) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == status
}
