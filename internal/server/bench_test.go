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

// BenchmarkExecPolicy is what the security policy adds to one exec of a
// typical command, one at a time: off (no analysis, no record), audit
// (analysis, and two records appended and fsynced: the decision before
// the command runs, its exit after).
func BenchmarkExecPolicy(b *testing.B) {
	const typical = "cd /workspace/repo && python -m pytest -x tests/ 2>&1 | tail -50"
	for _, policy := range []string{PolicyOff, PolicyAudit} {
		b.Run(policy, func(b *testing.B) {
			cfg := twoTenants()
			cfg.Security = SecurityConfig{Policy: policy}
			h, _ := newSecHarness(b, cfg)
			c := h.client(aliceToken)
			sb := h.create(c, client.CreateRequest{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				exit, err := c.Exec(ctx, sb.ID, client.ExecRequest{Command: typical}, nil)
				if err != nil || exit.Type != agentapi.EventExit {
					b.Fatalf("exec: %+v %v", exit, err)
				}
			}
		})
	}
}
