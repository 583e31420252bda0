package agent

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

// BenchmarkExecTrue is the round trip of `true` through the Go client and
// the agent's HTTP server on loopback: what `berth exec` costs on top of
// starting the process.
func BenchmarkExecTrue(b *testing.B) {
	id := Identity{UID: os.Getuid(), GID: os.Getgid(), Name: "bench", Home: b.TempDir(), Shell: "/bin/sh"}
	s, err := NewServer(context.Background(), Options{
		Key: testKey, UserID: id.UID, Workdir: b.TempDir(), Logger: slog.New(slog.DiscardHandler),
		SetupUser: func(context.Context, int) (Identity, error) { return id, nil },
		Environ:   []string{"PATH=" + os.Getenv("PATH")},
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	defer s.Close()
	c := agentapi.New(ts.URL, testKey, nil)
	req := agentapi.ExecRequest{Argv: []string{"true"}}
	for b.Loop() {
		if _, _, exit, err := c.ExecOutput(context.Background(), req); err != nil || exit.ExitCode != 0 {
			b.Fatalf("exec: %v (exit %d)", err, exit.ExitCode)
		}
	}
}
