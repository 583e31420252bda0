package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/coder/websocket"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/termline"
)

// ptyReadLimit is the largest message the server relays from a terminal's
// client (a big paste); the agent takes as much.
const ptyReadLimit = 1 << 20

// ptyDiscard is typed into the shell in place of a refused line's Enter:
// Ctrl-E (to the end of the line, in line editors) then Ctrl-U (erase to
// the start; the tty's kill character when nothing edits the line).
const ptyDiscard = "\x05\x15"

// servePTY serves a sandbox's terminal websocket when a security policy
// applies: rather than passing the websocket through, the server relays its
// messages and follows what is typed (internal/termline), so that each line
// is judged when Enter is pressed, before the Enter reaches the shell. A
// refused line is erased instead of run; the client is told in the terminal
// and by a text message {"type":"denied", ...} (client.PTYDenied). Under
// PolicyConfirm, typing waits while the line waits for approval.
func (s *Server) servePTY(w http.ResponseWriter, r *http.Request, sb sandbox.Sandbox, ag *agent) {
	t := tenantOf(r)
	q := r.URL.Query()
	q.Del(agentapi.QueryKey)
	// A command run in place of the shell is judged as an exec.
	var cmdGuard *guarded
	if cmd := q.Get(agentapi.PTYQueryCmd); cmd != "" {
		g, ok := s.guard(w, r, sb, s.judgeCommand(audit.ActionExec, cmd, nil))
		if !ok {
			return
		}
		cmdGuard = g
	}
	up, err := ag.client.DialPTYSocket(r.Context(), q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer up.CloseNow()
	up.SetReadLimit(ptyReadLimit)
	down, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		s.log.Debug("pty websocket accept", "sandbox", sb.ID, "err", err)
		return
	}
	defer down.CloseNow()
	down.SetReadLimit(ptyReadLimit)

	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer cancel()
		exit := s.ptyRelayOut(ctx, up, down)
		if exit != nil && cmdGuard != nil {
			s.done(cmdGuard, exit.ExitCode)
		}
	}()
	in := &ptyInput{s: s, t: t, sb: sb, up: up, down: down}
	err = in.relay(ctx)
	if err != nil && ctx.Err() == nil {
		// The client went away: the agent kills the shell when its
		// websocket closes.
		_ = up.Close(websocket.StatusGoingAway, "client gone")
	}
	cancel()
	wg.Wait()
}

// ptyRelayOut copies the agent's messages to the client until the agent
// closes (after the shell's exit message, which it returns) or either side
// fails.
func (s *Server) ptyRelayOut(ctx context.Context, up, down *websocket.Conn) *agentapi.PTYControl {
	var exit *agentapi.PTYControl
	for {
		typ, data, err := up.Read(ctx)
		if err != nil {
			if websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				_ = down.Close(websocket.StatusNormalClosure, "")
			}
			return exit
		}
		if typ == websocket.MessageText {
			var c agentapi.PTYControl
			if json.Unmarshal(data, &c) == nil && c.Type == agentapi.PTYExit {
				exit = &c
			}
		}
		if err := down.Write(ctx, typ, data); err != nil {
			return exit
		}
	}
}

// ptyInput relays what a client types to the agent, line by line under
// judgement.
type ptyInput struct {
	s        *Server
	t        *tenant
	sb       sandbox.Sandbox
	up, down *websocket.Conn

	line termline.Line
	// carry is the earlier lines of a command the shell is still reading
	// (an open quote, a trailing backslash, a here-document).
	carry string
}

// relay reads the client's messages until it goes away: text messages
// (resize) pass as they are, terminal bytes through the line follower.
func (in *ptyInput) relay(ctx context.Context) error {
	for {
		typ, data, err := in.down.Read(ctx)
		if err != nil {
			return err
		}
		if typ == websocket.MessageText {
			if err := in.up.Write(ctx, typ, data); err != nil {
				return err
			}
			continue
		}
		if err := in.typed(ctx, data); err != nil {
			return err
		}
	}
}

// typed follows data key by key. Keys go to the agent as they come, but
// an Enter goes only once its line is allowed.
func (in *ptyInput) typed(ctx context.Context, data []byte) error {
	start := 0
	for i := 0; i < len(data); i++ {
		switch in.line.Feed(data[i]) {
		case termline.Cancel:
			in.carry = ""
		case termline.Enter:
			if err := in.send(ctx, data[start:i]); err != nil {
				return err
			}
			start = i + 1
			if err := in.enter(ctx, data[i]); err != nil {
				return err
			}
		}
	}
	return in.send(ctx, data[start:])
}

func (in *ptyInput) send(ctx context.Context, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return in.up.Write(ctx, websocket.MessageBinary, b)
}

// enter judges the line that key (CR or LF) submits, then types the key
// or, when the line is refused, erases the line.
func (in *ptyInput) enter(ctx context.Context, key byte) error {
	text, unsure := in.carry+in.line.Text(), in.line.Unsure()
	in.line.Reset()
	if strings.TrimSpace(text) == "" && !unsure {
		in.carry = ""
		return in.send(ctx, []byte{key})
	}
	as, incomplete := in.s.analyzer.TerminalLine(text, unsure)
	next := ""
	if incomplete {
		next = text + "\n"
	}
	if incomplete && len(as.Findings) == 0 {
		// Nothing runs until the command is finished; its last line
		// judges it whole.
		in.carry = next
		return in.send(ctx, []byte{key})
	}
	_, refused := in.s.judge(ctx, in.t, in.sb, act{kind: audit.ActionPTYInput, what: text, as: as})
	if refused == nil {
		in.carry = next
		return in.send(ctx, []byte{key})
	}
	// The shell keeps the earlier lines of an unfinished command, so the
	// carry stays; only this line is erased.
	in.s.metrics.errors.WithLabelValues(client.CodeDenied).Inc()
	if err := in.send(ctx, []byte(ptyDiscard)); err != nil {
		return err
	}
	msg, err := json.Marshal(client.PTYDenied{Type: client.PTYDeniedType, DeniedError: *refused})
	if err != nil {
		return fmt.Errorf("pty: encode the refusal: %w", err)
	}
	show := "\r\nberth: " + strings.ReplaceAll(refused.Message, "\n", "\r\n") + "\r\n"
	if err := in.down.Write(ctx, websocket.MessageBinary, []byte(show)); err != nil {
		return err
	}
	return in.down.Write(ctx, websocket.MessageText, msg)
}

// isPTYPath reports whether the agent path (escaped, as handleAgent has
// it) is the terminal's, in any spelling the agent would take.
func isPTYPath(rest string) bool {
	p, err := url.PathUnescape(rest)
	return err == nil && path.Clean("/"+p) == agentapi.PathPTY
}
