package docker

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/sandbox"
)

// fakeAgentImage builds a runtime image whose "agent" is a shell script, to
// make a sandbox fail in a chosen way.
func fakeAgentImage(t *testing.T, name, script string) string {
	env.RequireImage(t, dockertest.BusyboxImage)
	tag := "berth-test-" + name + ":" + env.RunID
	env.BuildImage(t, tag, "FROM "+dockertest.BusyboxImage+"\nCOPY agent /opt/berth/berth-agent\n",
		map[string]string{"agent": "#!/bin/sh\n" + script + "\n"})
	return tag
}

// failingStart lets the container be created for real, then fails its start.
type failingStart struct {
	Engine
	fails   int32 // how many starts fail
	message string
	calls   atomic.Int32
}

func (f *failingStart) ContainerStart(ctx context.Context, id string, opts client.ContainerStartOptions) (client.ContainerStartResult, error) {
	if f.calls.Add(1) <= f.fails {
		return client.ContainerStartResult{}, errors.New(f.message)
	}
	return f.Engine.ContainerStart(ctx, id, opts)
}

func TestFailedCreateLeavesNothing(t *testing.T) {
	c := env.Require(t)
	cases := []struct {
		name    string
		engine  func() Engine
		spec    func(*testing.T) sandbox.Spec
		wantErr error
		want    []string // in the error text
	}{
		{
			name: "start fails",
			engine: func() Engine {
				return &failingStart{Engine: c, fails: 1, message: "injected: OCI runtime create failed"}
			},
			spec:    spec,
			wantErr: sandbox.ErrStartFailed,
			want:    []string{"injected: OCI runtime create failed"},
		},
		{
			name: "container exits before ready",
			spec: func(t *testing.T) sandbox.Spec {
				s := spec(t)
				s.Image = sandbox.ImageSpec{Runtime: fakeAgentImage(t, "exit", "echo 'agent: cannot open workspace' >&2\nexit 3")}
				return s
			},
			wantErr: sandbox.ErrStartFailed,
			want:    []string{"exited with code 3", "exit code 3", "agent: cannot open workspace"},
		},
		{
			name: "readiness times out",
			spec: func(t *testing.T) sandbox.Spec {
				s := spec(t)
				s.Image = sandbox.ImageSpec{Runtime: fakeAgentImage(t, "hang", "echo 'agent: still loading'\nexec sleep 600")}
				s.Timeout = 1500 * time.Millisecond
				return s
			},
			wantErr: sandbox.ErrReadyTimeout,
			want:    []string{"did not answer within 1.5s", "agent: still loading", "state running"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var engine Engine
			if tc.engine != nil {
				engine = tc.engine()
			}
			h := newHarness(t, engine)
			s := tc.spec(t)
			before := env.Containers(t)
			_, err := h.rt.Create(context.Background(), s)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Create() = %v, want %v", err, tc.wantErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			h.assertNothingLeft(t, before)
		})
	}
}

// The engine says the port is taken (a process outside berth got it between
// the test bind and the publish): the create retries on another port.
func TestCreateRetriesTakenPort(t *testing.T) {
	c := env.Require(t)
	engine := &failingStart{Engine: c, fails: 2, message: "driver failed programming external connectivity: Bind for 127.0.0.1:31000 failed: port is already allocated"}
	h := newHarness(t, engine)
	before := env.Containers(t)
	sb := h.create(t, spec(t))
	if engine.calls.Load() != 3 {
		t.Errorf("start called %d times, want 3", engine.calls.Load())
	}
	if out, _ := run(t, h, sb, "echo", "up"); out != "up\n" {
		t.Errorf("exec: %q", out)
	}
	if now := env.Containers(t); len(now) != len(before)+1 {
		t.Errorf("containers: %d before, %d after; the failed attempts' containers must be gone", len(before), len(now))
	}
	if res := h.reservations(t); len(res) != 1 {
		t.Errorf("reservations: %v, want only the sandbox's port", res)
	}
}

func TestConnectUnreachable(t *testing.T) {
	t.Setenv("DOCKER_HOST", "unix:///nonexistent/berth-test.sock")
	_, err := Connect(context.Background())
	if !errors.Is(err, sandbox.ErrUnavailable) {
		t.Fatalf("Connect() = %v, want ErrUnavailable", err)
	}
	for _, w := range []string{"/nonexistent/berth-test.sock", "DOCKER_HOST", "dockerd"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not mention %q: %v", w, err)
		}
	}
}
