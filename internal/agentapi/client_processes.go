package agentapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// StartProcess starts a background process and returns it (running). It
// runs on when ctx ends; stop it with SignalProcess or RemoveProcess.
func (c *Client) StartProcess(ctx context.Context, req ProcessRequest) (ProcessInfo, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ProcessInfo{}, fmt.Errorf("agent start process: encode request: %w", err)
	}
	var info ProcessInfo
	err = c.callJSON(ctx, http.MethodPost, PathProcesses, body, &info)
	return info, err
}

// Processes lists the background processes, running and kept exited,
// oldest first.
func (c *Client) Processes(ctx context.Context) ([]ProcessInfo, error) {
	var list ProcessList
	if err := c.callJSON(ctx, http.MethodGet, PathProcesses, nil, &list); err != nil {
		return nil, err
	}
	return list.Processes, nil
}

// Process returns one background process, by id or name.
func (c *Client) Process(ctx context.Context, ref string) (ProcessInfo, error) {
	var info ProcessInfo
	err := c.callJSON(ctx, http.MethodGet, ProcessPath(ref), nil, &info)
	return info, err
}

// ProcessOutput reads a background process's output from offset. Every
// event goes to onEvent (if not nil) as it arrives: a dropped event first
// when output from offset is no longer kept, then stdout and stderr
// chunks; an error from onEvent stops the call and is returned.
//
// Without follow it returns what the agent holds now, with the offset to
// ask for next (Chunks holds the chunks too). With follow it streams
// until the process has exited and all of its output was delivered, then
// returns the end offset and the final state; Chunks stays empty.
// DroppedBytes sums the output skipped.
func (c *Client) ProcessOutput(ctx context.Context, ref string, offset int64, follow bool, onEvent func(OutputEvent) error) (ProcessOutput, error) {
	q := url.Values{"offset": {strconv.FormatInt(offset, 10)}}
	if follow {
		q.Set("follow", "1")
	}
	path := ProcessPath(ref) + ProcessOutputSuffix + "?" + q.Encode()
	if !follow {
		var out ProcessOutput
		if err := c.callJSON(ctx, http.MethodGet, path, nil, &out); err != nil {
			return ProcessOutput{}, err
		}
		if onEvent == nil {
			return out, nil
		}
		if out.DroppedBytes > 0 {
			if err := onEvent(OutputEvent{Type: OutputDropped, Offset: offset + out.DroppedBytes, DroppedBytes: out.DroppedBytes}); err != nil {
				return ProcessOutput{}, err
			}
		}
		for _, ev := range out.Chunks {
			if err := onEvent(ev); err != nil {
				return ProcessOutput{}, err
			}
		}
		return out, nil
	}

	resp, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return ProcessOutput{}, err
	}
	defer resp.Body.Close()
	var dropped int64
	var out ProcessOutput
	err = streamEvents(ctx, resp.Body, "process "+ref+" output", func(ev OutputEvent) (bool, error) {
		switch ev.Type {
		case OutputExit:
			out = ProcessOutput{NextOffset: ev.Offset, DroppedBytes: dropped}
			if ev.Process != nil {
				out.Process = *ev.Process
			}
			return true, nil
		case OutputError:
			return true, fmt.Errorf("agent process %s output: %w", ref, eventError(ev.Error))
		case OutputDropped:
			dropped += ev.DroppedBytes
		}
		if onEvent != nil {
			if err := onEvent(ev); err != nil {
				return true, err
			}
		}
		return false, nil
	})
	if err != nil {
		return ProcessOutput{}, err
	}
	return out, nil
}

// WaitProcess blocks until the process exits and returns its final state.
// With timeout > 0 it returns after that long at most, with the process
// still running (check Running) if it has not exited; 0 waits as long as
// ctx allows.
func (c *Client) WaitProcess(ctx context.Context, ref string, timeout time.Duration) (ProcessInfo, error) {
	path := ProcessPath(ref) + ProcessWaitSuffix
	if timeout > 0 {
		path += "?timeout_ms=" + strconv.FormatInt(max(timeout.Milliseconds(), 1), 10)
	}
	var info ProcessInfo
	err := c.callJSON(ctx, http.MethodPost, path, nil, &info)
	return info, err
}

// WriteStdin writes data to the process's stdin, then closes it if eof.
// It returns how many bytes were written; the call lasts while the process
// does not read, as long as ctx allows. A process that exited, or whose
// stdin was closed, gives an *APIError with status 409.
func (c *Client) WriteStdin(ctx context.Context, ref string, data []byte, eof bool) (int, error) {
	body, err := json.Marshal(StdinRequest{Data: data, EOF: eof})
	if err != nil {
		return 0, fmt.Errorf("agent process %s stdin: encode request: %w", ref, err)
	}
	var resp StdinResponse
	err = c.callJSON(ctx, http.MethodPost, ProcessPath(ref)+ProcessStdinSuffix, body, &resp)
	return resp.Written, err
}

// SignalProcess sends signal ("SIGTERM", "TERM", "15"; "" means SIGTERM)
// to the process's whole process group. An exited process gives an
// *APIError with status 409.
func (c *Client) SignalProcess(ctx context.Context, ref, signal string) (ProcessInfo, error) {
	body, err := json.Marshal(SignalRequest{Signal: signal})
	if err != nil {
		return ProcessInfo{}, fmt.Errorf("agent process %s signal: encode request: %w", ref, err)
	}
	var info ProcessInfo
	err = c.callJSON(ctx, http.MethodPost, ProcessPath(ref)+ProcessSignalSuffix, body, &info)
	return info, err
}

// RemoveProcess kills the process's group if it runs (SIGKILL), forgets the
// process and its output, and returns its last state.
func (c *Client) RemoveProcess(ctx context.Context, ref string) (ProcessInfo, error) {
	var info ProcessInfo
	err := c.callJSON(ctx, http.MethodDelete, ProcessPath(ref), nil, &info)
	return info, err
}
