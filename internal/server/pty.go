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

// servePTY serves a sandbox's terminal websocket when a security policy
// applies: rather than passing the websocket through, the server relays its
// messages and judges each line typed when Enter is pressed.
//
// Under PolicyDeny and PolicyConfirm the server is the terminal's line
// editor (termline.Editor): the shell gets nothing of a line until it is
// judged and allowed, then the line as plain text with its Enter. A refused
// line never reaches the shell; the client is told in the terminal and by
// a text message {"type":"denied", ...} (client.PTYDenied). Under confirm,
// typing waits while the line waits for approval. The shell shows a line
// when it gets it, so typing is not echoed until Enter.
//
// Under PolicyAudit keys pass as typed and the server follows the lines
// (termline.Line) to record them.
func (s *Server) servePTY(w http.ResponseWriter, r *http.Request, sb sandbox.Sandbox, ag *agent) {
	t := tenantOf(r)
	q := r.URL.Query()
	q.Del(agentapi.QueryKey)
	// A command run in place of the shell is judged as an exec, with the
	// terminal's env; env alone (for the shell) as an env action.
	env := map[string]string{}
	for _, kv := range q[agentapi.PTYQueryEnv] {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	var cmdGuard *guarded
	if cmd := q.Get(agentapi.PTYQueryCmd); cmd != "" {
		g, ok := s.guard(w, r, sb, s.judgeCommandEnv(audit.ActionExec, cmd, nil, env))
		if !ok {
			return
		}
		cmdGuard = g
	} else if len(env) > 0 {
		if _, ok := s.guard(w, r, sb, s.judgeEnv(env)); !ok {
			return
		}
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
	policy := s.policyFor(t, sb)
	in := &ptyInput{s: s, t: t, sb: sb, up: up, down: down, strict: policy == PolicyDeny || policy == PolicyConfirm}
	// When the client goes away, the agent's websocket is closed (the
	// deferred CloseNow) and the agent kills the shell.
	_ = in.relay(ctx, cancel)
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
	// strict: the policy may refuse (deny, confirm), so lines reach the
	// shell only once judged (ed); else (audit) keys pass as typed and
	// lines are followed (line) to be recorded.
	strict bool
	ed     termline.Editor
	line   termline.Line

	// carry is the earlier lines of a command the shell is still reading
	// (an open quote, a trailing backslash, a here-document).
	carry string
}

// ptyMessage is one message of a terminal's client.
type ptyMessage struct {
	typ  websocket.MessageType
	data []byte
}

// relay reads the client's messages until it goes away: text messages
// (resize) pass as they are, terminal bytes through the line editor or
// follower. The client is read on its own goroutine, a few messages
// ahead, so that while a line waits for approval its pings are answered
// and its going away is seen: cancel then ends the wait (the line is
// refused) and the terminal.
func (in *ptyInput) relay(ctx context.Context, cancel context.CancelFunc) error {
	msgs := make(chan ptyMessage, 16)
	var readErr error
	go func() {
		defer close(msgs)
		for {
			typ, data, err := in.down.Read(ctx)
			if err != nil {
				readErr = err
				cancel()
				return
			}
			select {
			case msgs <- ptyMessage{typ, data}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for m := range msgs {
		var err error
		switch {
		case m.typ == websocket.MessageText:
			err = in.up.Write(ctx, m.typ, m.data)
		case in.strict:
			err = in.edited(ctx, m.data)
		default:
			err = in.followed(ctx, m.data)
		}
		if err != nil {
			cancel()
			for range msgs { // the reader ends with ctx
			}
			return err
		}
	}
	return readErr // set before msgs was closed
}

// edited takes data key by key into the line editor: the shell gets a
// line, as plain text with its Enter, only once the line is allowed, and
// otherwise only Ctrl-C and Ctrl-D on an empty line. What the shell cannot
// be given (escape sequences, Tab, other control keys) is dropped, so it
// cannot edit, recall or run a line berth has not judged.
func (in *ptyInput) edited(ctx context.Context, data []byte) error {
	for _, c := range data {
		switch in.ed.Feed(c) {
		case termline.Pass:
			in.carry = ""
			if err := in.send(ctx, []byte{c}); err != nil {
				return err
			}
		case termline.Submit:
			line, overflow := in.ed.Text(), in.ed.Overflow()
			in.ed.Reset()
			refused, err := in.enter(ctx, line, overflow)
			if err != nil {
				return err
			}
			if refused == nil {
				if err := in.send(ctx, append([]byte(line), c)); err != nil {
					return err
				}
				continue
			}
			if err := in.refuse(ctx, refused); err != nil {
				return err
			}
		}
	}
	return nil
}

// followed passes data on as typed and follows the lines it makes, to
// record each when its Enter passes (policy audit: nothing is refused).
func (in *ptyInput) followed(ctx context.Context, data []byte) error {
	for _, c := range data {
		switch in.line.Feed(c) {
		case termline.Cancel:
			in.carry = ""
		case termline.Enter:
			line, unsure := in.line.Text(), in.line.Unsure()
			in.line.Reset()
			if _, err := in.enter(ctx, line, unsure); err != nil {
				return err
			}
		}
	}
	return in.send(ctx, data)
}

func (in *ptyInput) send(ctx context.Context, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return in.up.Write(ctx, websocket.MessageBinary, b)
}

// enter judges the line Enter submits, with the earlier lines of a
// command the shell is still reading; unsure: berth could not follow its
// edits. It returns the refusal, if the policy refuses it.
func (in *ptyInput) enter(ctx context.Context, line string, unsure bool) (*client.DeniedError, error) {
	text := in.carry + line
	if strings.TrimSpace(text) == "" && !unsure {
		in.carry = ""
		return nil, nil
	}
	as, incomplete := in.s.termAnalyzer.TerminalLine(text, unsure)
	next := ""
	if incomplete {
		next = text + "\n"
	}
	if incomplete && len(as.Findings) == 0 {
		// Nothing runs until the command is finished; its last line
		// judges it whole.
		in.carry = next
		return nil, nil
	}
	_, refused := in.s.judge(ctx, in.t, in.sb, act{kind: audit.ActionPTYInput, what: text, as: as})
	if refused == nil {
		in.carry = next
	}
	// Refused, the line never reached the shell: the carry (lines the
	// shell holds) stays as it is.
	return refused, nil
}

// refuse tells the client that a line was refused: on its screen, and as
// a text message {"type":"denied", ...}.
func (in *ptyInput) refuse(ctx context.Context, refused *client.DeniedError) error {
	in.s.metrics.errors.WithLabelValues(client.CodeDenied).Inc()
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
