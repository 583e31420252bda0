package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
)

// Every test of the package leaves no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serving runs h.srv.Serve on a loopback port until the returned cancel;
// done gets Serve's result. The test fails if goroutines outlive it.
func serving(t *testing.T, h *harness) (base string, cancel context.CancelFunc, done <-chan error, tr *http.Transport) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.srv.Serve(ctx, ln) }()
	tr = &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, errc, tr
}

func TestGracefulShutdown(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	h := newHarness(t, twoTenants())
	base, stop, done, tr := serving(t, h)
	c, err := client.New(base, aliceToken, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sb := h.create(c, client.CreateRequest{})
	events, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	type result struct {
		exit client.ExecEvent
		out  []byte
		err  error
	}
	execDone := make(chan result, 1)
	go func() {
		out, _, exit, err := c.ExecOutput(ctx, sb.ID, client.ExecRequest{Command: "block"})
		execDone <- result{exit, out, err}
	}()
	<-h.agent.started // the exec runs in the agent

	stop() // SIGTERM
	// Event streams close at once.
	if e, err := events.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("event stream after shutdown: %+v %v, want EOF", e, err)
	}
	// The in-flight exec goes on, and finishes normally.
	select {
	case r := <-execDone:
		t.Fatalf("the exec ended before the command did: %+v", r)
	case err := <-done:
		t.Fatalf("Serve returned with an exec in flight: %v", err)
	default:
	}
	close(h.agent.release)
	r := <-execDone
	if r.err != nil || r.exit.Type != agentapi.EventExit || string(r.out) != "block\n" {
		t.Fatalf("in-flight exec = %+v", r)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	// No new connections, and the sandbox is left alone.
	if conn, err := net.Dial("tcp", base[len("http://"):]); err == nil {
		conn.Close()
		t.Error("the server still accepts connections")
	}
	if got, err := h.rt.Get(ctx, sb.ID); err != nil || got.State != "running" {
		t.Errorf("the sandbox after shutdown: %+v %v", got, err)
	}
}

func TestShutdownDeadline(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	cfg := twoTenants()
	cfg.ShutdownTimeout = 200 * time.Millisecond
	h := newHarness(t, cfg)
	base, stop, done, tr := serving(t, h)
	c, err := client.New(base, aliceToken, &http.Client{Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sb := h.create(c, client.CreateRequest{})
	// A follow of the logs, a terminal through the proxy, an exec that
	// never ends.
	logs, err := c.Logs(ctx, sb.ID, client.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	pty, err := c.Agent(sb.ID).DialPTY(ctx, agentapi.PTYOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	hello := make([]byte, 6)
	if _, err := io.ReadFull(pty, hello); err != nil {
		t.Fatal(err)
	}
	execErr := make(chan error, 1)
	go func() {
		_, err := c.Exec(ctx, sb.ID, client.ExecRequest{Command: "block"}, nil)
		execErr <- err
	}()
	<-h.agent.started

	start := time.Now()
	stop()
	// The follow ends at once.
	if b, err := io.ReadAll(logs); err != nil || len(b) != 0 {
		t.Errorf("log follow after shutdown: %q %v", b, err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
	if d := time.Since(start); d < cfg.ShutdownTimeout || d > cfg.ShutdownTimeout+5*time.Second {
		t.Errorf("shutdown took %s with a %s deadline", d, cfg.ShutdownTimeout)
	}
	// The exec was cancelled at the deadline, and told so.
	var ae *agentapi.Error
	if err := <-execErr; !errors.As(err, &ae) || ae.Code != client.CodeUnavailable {
		t.Errorf("exec cut by the shutdown: %v", err)
	}
	// The terminal was closed.
	if _, err := io.ReadAll(pty); err == nil {
		t.Error("the terminal ended cleanly, as if the shell had exited")
	}
}
