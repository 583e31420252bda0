package server

import (
	"context"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
)

// BenchmarkExec is the server's own cost of an exec: REST call, tenant
// check, view lookup, agent call and stream relay, with an in-memory view
// and a fake agent (no process is started).
func BenchmarkExec(b *testing.B) {
	h := newHarness(b, twoTenants())
	c := h.client(aliceToken)
	sb := h.create(c, client.CreateRequest{})
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			exit, err := c.Exec(ctx, sb.ID, client.ExecRequest{Cmd: []string{"true"}}, nil)
			if err != nil || exit.Type != agentapi.EventExit {
				b.Errorf("exec: %+v %v", exit, err)
				return
			}
		}
	})
}
