package e2e

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/dockertest"
)

// BenchmarkStreamFirstByte measures how long a line a process writes takes
// to reach the host: the process prints the clock (the container shares the
// host's kernel clock) and the client notes when the line arrives.
func BenchmarkStreamFirstByte(b *testing.B) {
	box := newBox(b, dockertest.DebianImage)
	var total time.Duration
	n := 0
	for b.Loop() {
		// Wait a little so the line is written well after the exec started.
		req := agentapi.ExecRequest{Command: `sleep 0.05; date +%s%N; sleep 0.05`}
		var lat time.Duration
		_, err := box.agent.Exec(context.Background(), req, func(ev agentapi.ExecEvent) error {
			if ev.Type == agentapi.EventStdout && lat == 0 {
				now := time.Now()
				ns, err := strconv.ParseInt(strings.TrimSpace(string(ev.Data)), 10, 64)
				if err == nil {
					lat = now.Sub(time.Unix(0, ns))
				}
			}
			return nil
		})
		if err != nil || lat == 0 {
			b.Fatalf("exec: %v (latency %v)", err, lat)
		}
		total += lat
		n++
	}
	b.ReportMetric(float64(total.Microseconds())/float64(n)/1000, "ms-first-byte")
}
