package agentapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"

	"github.com/coder/websocket"
)

// PTYOptions open a terminal. Zero values mean the agent's defaults.
type PTYOptions struct {
	Cols, Rows int               // window size; default 80x24
	Cmd        string            // a shell string to run instead of an interactive shell
	Cwd        string            // absolute, or relative to the workdir
	Env        map[string]string // added to the environment (TERM is xterm-256color unless set here)
}

// PTYConn is an open terminal: Read what it shows, Write what is typed.
// Read, Write and Resize may be called from different goroutines.
type PTYConn struct {
	ws     *websocket.Conn
	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	pr     *io.PipeReader
	done   chan struct{} // the reader has stopped

	mu   sync.Mutex
	exit *PTYControl
}

// DialPTY opens a terminal in the sandbox. ctx bounds the opening only;
// the terminal lasts until the shell exits or Close. A request the agent
// refuses gives an *APIError.
func (c *Client) DialPTY(ctx context.Context, opts PTYOptions) (*PTYConn, error) {
	q := url.Values{}
	if opts.Cols > 0 {
		q.Set(PTYQueryCols, strconv.Itoa(opts.Cols))
	}
	if opts.Rows > 0 {
		q.Set(PTYQueryRows, strconv.Itoa(opts.Rows))
	}
	if opts.Cmd != "" {
		q.Set(PTYQueryCmd, opts.Cmd)
	}
	if opts.Cwd != "" {
		q.Set(PTYQueryCwd, opts.Cwd)
	}
	names := make([]string, 0, len(opts.Env))
	for k := range opts.Env {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		q.Add(PTYQueryEnv, k+"="+opts.Env[k])
	}
	ws, err := c.DialPTYSocket(ctx, q)
	if err != nil {
		return nil, err
	}
	ws.SetReadLimit(1 << 20)
	pr, pw := io.Pipe()
	cctx, cancel := context.WithCancel(context.Background())
	p := &PTYConn{ws: ws, ctx: cctx, cancel: cancel, pr: pr, done: make(chan struct{})}
	go p.readLoop(pw)
	return p, nil
}

// DialPTYSocket opens the terminal's websocket with query q (the
// PTYQuery parameters) and returns it as it is, for a caller that relays
// its messages (berth serve). A request the agent refuses gives an
// *APIError.
func (c *Client) DialPTYSocket(ctx context.Context, q url.Values) (*websocket.Conn, error) {
	u := c.base + PathPTY
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	ws, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{
		HTTPClient: c.hc,
		HTTPHeader: http.Header{HeaderKey: {c.key}},
	})
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols && resp.Body != nil {
			return nil, fmt.Errorf("agent %s: %w", PathPTY, readAPIError(resp))
		}
		return nil, fmt.Errorf("agent %s: %w", PathPTY, err)
	}
	return ws, nil
}

// readLoop hands terminal bytes to Read and keeps the exit message. It
// reads until the websocket closes, so the agent's close handshake is
// answered even when no one calls Read any more.
func (p *PTYConn) readLoop(pw *io.PipeWriter) {
	defer close(p.done)
	for {
		typ, data, err := p.ws.Read(p.ctx)
		if err != nil {
			p.mu.Lock()
			exited := p.exit != nil
			p.mu.Unlock()
			switch {
			case exited || websocket.CloseStatus(err) == websocket.StatusNormalClosure:
				pw.Close()
			case p.ctx.Err() != nil:
				pw.CloseWithError(fmt.Errorf("terminal closed: %w", net.ErrClosed))
			default:
				pw.CloseWithError(fmt.Errorf("terminal connection ended before the shell exited: %w", err))
			}
			return
		}
		switch typ {
		case websocket.MessageBinary:
			// An error means Close was called; keep reading to the end.
			_, _ = pw.Write(data)
		case websocket.MessageText:
			var c PTYControl
			if json.Unmarshal(data, &c) == nil && c.Type == PTYExit {
				p.mu.Lock()
				p.exit = &c
				p.mu.Unlock()
			}
		}
	}
}

// Read reads what the terminal shows. It returns io.EOF once the shell has
// exited and all of its output was read; see ExitCode.
func (p *PTYConn) Read(b []byte) (int, error) { return p.pr.Read(b) }

// Write types b into the terminal.
func (p *PTYConn) Write(b []byte) (int, error) {
	if err := p.ws.Write(p.ctx, websocket.MessageBinary, b); err != nil {
		return 0, fmt.Errorf("terminal write: %w", err)
	}
	return len(b), nil
}

// Resize tells the terminal its window's new size.
func (p *PTYConn) Resize(ctx context.Context, cols, rows int) error {
	msg, err := json.Marshal(PTYControl{Type: PTYResize, Cols: cols, Rows: rows})
	if err != nil {
		return fmt.Errorf("terminal resize: %w", err)
	}
	if err := p.ws.Write(ctx, websocket.MessageText, msg); err != nil {
		return fmt.Errorf("terminal resize: %w", err)
	}
	return nil
}

// ExitCode returns the shell's exit code (128+n when signal n killed it)
// once the agent has reported the exit; ok is false before that, and when
// the connection ended without it.
func (p *PTYConn) ExitCode() (code int, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exit == nil {
		return 0, false
	}
	return p.exit.ExitCode, true
}

// Exit returns the agent's exit message, if one came.
func (p *PTYConn) Exit() (PTYControl, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.exit == nil {
		return PTYControl{}, false
	}
	return *p.exit, true
}

// Close closes the terminal. If the shell still runs, the agent kills its
// session.
func (p *PTYConn) Close() error {
	err := p.ws.Close(websocket.StatusNormalClosure, "")
	p.cancel()
	p.pr.Close()
	<-p.done
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("terminal close: %w", err)
	}
	return nil
}
