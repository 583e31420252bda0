package agent

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

func TestRunServesAndStopsPromptly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	id := Identity{UID: os.Getuid(), GID: os.Getgid(), Name: "tester", Home: t.TempDir(), Shell: "/bin/sh"}
	ran := make(chan error, 1)
	go func() {
		ran <- Run(ctx, Options{
			Key:       testKey,
			Listener:  ln,
			UserID:    id.UID,
			Workdir:   t.TempDir() + "/work/dir", // created by Run
			Logger:    slog.New(slog.NewTextHandler(t.Output(), nil)),
			SetupUser: func(context.Context, int) (Identity, error) { return id, nil },
		})
	}()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := agentapi.New("http://"+ln.Addr().String(), testKey, &http.Client{Transport: tr})
	// The listener exists before Run: /alive answers as soon as it serves.
	if err := c.Alive(t.Context()); err != nil {
		t.Fatalf("Alive: %v", err)
	}

	// A running command (with a background child) at shutdown is killed,
	// and its stream still ends with the exit event.
	started := make(chan int, 1)
	execDone := make(chan agentapi.ExecEvent, 1)
	execErr := make(chan error, 1)
	go func() {
		exit, err := c.Exec(t.Context(), agentapi.ExecRequest{Command: "sleep 1000 & sleep 1000"},
			func(ev agentapi.ExecEvent) error {
				if ev.Type == agentapi.EventStart {
					started <- ev.PID
				}
				return nil
			})
		execErr <- err
		execDone <- exit
	}()
	pid := <-started

	t0 := time.Now()
	stop()
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return 5s after the stop")
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("Run took %v to stop, want well under a second", el)
	}
	if err := <-execErr; err != nil {
		t.Errorf("Exec during shutdown: %v", err)
	} else if exit := <-execDone; exit.Signal != "SIGKILL" {
		t.Errorf("exit = %+v, want killed by SIGKILL", exit)
	}
	waitGone(t, pid)
	// Nothing listens any more.
	if err := c.Alive(t.Context()); err == nil {
		t.Error("Alive after Run returned")
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	wd := t.TempDir()
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no key", Options{Addr: "127.0.0.1:0"}, "key is empty"},
		{"relative workdir", Options{Key: "k", Addr: "127.0.0.1:0", Workdir: "work"}, "not an absolute path"},
		{"negative uid", Options{Key: "k", Addr: "127.0.0.1:0", UserID: -1}, "negative"},
		{"bad address", Options{Key: "k", Addr: "256.0.0.1:99999", Workdir: wd,
			UserID:    os.Getuid(),
			SetupUser: func(context.Context, int) (Identity, error) { return Identity{UID: os.Getuid(), GID: os.Getgid()}, nil },
		}, "listen on"},
		{"user setup fails", Options{Key: "k", Addr: "127.0.0.1:0", Workdir: wd,
			SetupUser: func(context.Context, int) (Identity, error) { return Identity{}, errors.New("boom") },
		}, "set up user 0: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Run(t.Context(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run = %v, want an error with %q", err, tt.want)
			}
		})
	}
}
