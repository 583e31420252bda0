package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Create makes a sandbox and returns its record once its agent answers.
func (c *Client) Create(ctx context.Context, req CreateRequest) (sandbox.Sandbox, error) {
	var sb sandbox.Sandbox
	err := c.call(ctx, http.MethodPost, PathSandboxes, req, &sb)
	return sb, err
}

// Get returns the sandbox ref names (its id, a unique prefix, or its name).
func (c *Client) Get(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	var sb sandbox.Sandbox
	err := c.call(ctx, http.MethodGet, SandboxPath(ref, ""), nil, &sb)
	return sb, err
}

// ListOptions select sandboxes and a page of them.
type ListOptions struct {
	Status sandbox.Status
	Label  map[string]string // all must match
	PageID string            // NextPageID of the previous page
	Limit  int               // 0 = the server's default (100)
}

// List returns one page of the tenant's sandboxes, newest first.
func (c *Client) List(ctx context.Context, opts ListOptions) (ListResponse, error) {
	q := url.Values{}
	if opts.Status != "" {
		q.Set("status", string(opts.Status))
	}
	keys := make([]string, 0, len(opts.Label))
	for k := range opts.Label {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		q.Add("label", k+"="+opts.Label[k])
	}
	if opts.PageID != "" {
		q.Set("page_id", opts.PageID)
	}
	if opts.Limit > 0 {
		q.Set("limit", strconv.Itoa(opts.Limit))
	}
	path := PathSandboxes
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page ListResponse
	err := c.call(ctx, http.MethodGet, path, nil, &page)
	return page, err
}

// ListAll returns every sandbox that matches opts, newest first, reading
// page after page.
func (c *Client) ListAll(ctx context.Context, opts ListOptions) ([]sandbox.Sandbox, error) {
	opts.Limit = MaxListLimit
	var all []sandbox.Sandbox
	for {
		page, err := c.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		all = append(all, page.Items...)
		if page.NextPageID == "" {
			return all, nil
		}
		opts.PageID = page.NextPageID
	}
}

// BatchGet returns the sandboxes ids name, in order; nil for those not
// found.
func (c *Client) BatchGet(ctx context.Context, ids []string) ([]*sandbox.Sandbox, error) {
	var resp BatchGetResponse
	if err := c.call(ctx, http.MethodPost, PathBatchGet, BatchGetRequest{IDs: ids}, &resp); err != nil {
		return nil, err
	}
	return resp.Items, nil
}

// Pause freezes the sandbox's processes.
func (c *Client) Pause(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return c.action(ctx, ref, "/pause")
}

// Resume thaws or starts the sandbox; it returns once its agent answers.
func (c *Client) Resume(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return c.action(ctx, ref, "/resume")
}

// Stop stops the sandbox's container.
func (c *Client) Stop(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return c.action(ctx, ref, "/stop")
}

func (c *Client) action(ctx context.Context, ref, suffix string) (sandbox.Sandbox, error) {
	var sb sandbox.Sandbox
	err := c.call(ctx, http.MethodPost, SandboxPath(ref, suffix), nil, &sb)
	return sb, err
}

// Remove removes the sandbox.
func (c *Client) Remove(ctx context.Context, ref string) error {
	return c.call(ctx, http.MethodDelete, SandboxPath(ref, ""), nil, nil)
}

// Exec runs req in the sandbox and returns the final event (type exit).
// Every event, the final one included, goes to onEvent (if not nil) as it
// arrives; an error from onEvent stops the call and is returned (a one-shot
// command is then killed, as when ctx ends). A stream that ends in an error
// event gives an error wrapping its *agentapi.Error.
func (c *Client) Exec(ctx context.Context, ref string, req ExecRequest, onEvent func(ExecEvent) error) (ExecEvent, error) {
	path := SandboxPath(ref, "/exec")
	resp, err := c.do(ctx, http.MethodPost, path, req, "application/x-ndjson")
	if err != nil {
		return ExecEvent{}, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev ExecEvent
		if err := dec.Decode(&ev); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				err = ctxErr
			}
			return ExecEvent{}, fmt.Errorf("berth exec in %s: stream ended before the exit event: %w", ref, err)
		}
		if onEvent != nil {
			if err := onEvent(ev); err != nil {
				return ExecEvent{}, err
			}
		}
		switch ev.Type {
		case agentapi.EventExit:
			return ev, nil
		case agentapi.EventError:
			e := ev.Error
			if e == nil {
				e = &agentapi.Error{Code: CodeInternal, Message: "error event without details"}
			}
			return ExecEvent{}, fmt.Errorf("berth exec in %s: %w", ref, e)
		}
	}
}

// ExecOutput runs req and returns its whole output with the exit event.
func (c *Client) ExecOutput(ctx context.Context, ref string, req ExecRequest) (stdout, stderr []byte, exit ExecEvent, err error) {
	var out, errb []byte
	exit, err = c.Exec(ctx, ref, req, func(ev ExecEvent) error {
		switch ev.Type {
		case agentapi.EventStdout:
			out = append(out, ev.Data...)
		case agentapi.EventStderr:
			errb = append(errb, ev.Data...)
		}
		return nil
	})
	return out, errb, exit, err
}

// LogOptions select container logs.
type LogOptions struct {
	Follow bool
	Tail   string // "all" (default) or a number of lines
}

// Logs streams the sandbox's container logs; with Follow, until ctx ends
// or the server shuts down. Close the reader when done.
func (c *Client) Logs(ctx context.Context, ref string, opts LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if opts.Follow {
		q.Set("follow", "1")
	}
	if opts.Tail != "" {
		q.Set("tail", opts.Tail)
	}
	path := SandboxPath(ref, "/logs")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	resp, err := c.do(ctx, http.MethodGet, path, nil, "text/plain")
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

// EventStream is an open GET /api/v1/events.
type EventStream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// Events subscribes to the tenant's events. It returns once the server has
// subscribed: every event published after that is delivered, in order.
// The stream ends (Next returns io.EOF) when the server shuts down or
// drops a subscriber that fell behind; ctx or Close end it too.
func (c *Client) Events(ctx context.Context) (*EventStream, error) {
	resp, err := c.do(ctx, http.MethodGet, PathEvents, nil, "text/event-stream")
	if err != nil {
		return nil, err
	}
	return &EventStream{body: resp.Body, r: bufio.NewReaderSize(resp.Body, 64<<10)}, nil
}

// Next returns the next event; io.EOF once the stream has ended.
func (s *EventStream) Next() (Event, error) {
	var data []byte
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return Event{}, io.EOF
			}
			return Event{}, fmt.Errorf("berth events: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		switch {
		case line == "":
			if data == nil {
				continue // the end of a comment or an empty event
			}
			var e Event
			if err := json.Unmarshal(data, &e); err != nil {
				return Event{}, fmt.Errorf("berth events: decode: %w", err)
			}
			return e, nil
		case strings.HasPrefix(line, ":"): // a comment: keep-alive
		case strings.HasPrefix(line, "data:"):
			d := strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
	}
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
