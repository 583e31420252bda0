package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Results of a health check, as berth_health_checks_total counts them.
const (
	checkOK      = "ok"
	checkFailed  = "failed"
	checkInGrace = "failed_in_grace" // a failure during the startup grace: not counted
)

// healthLoop checks the agent of every running sandbox each
// HealthInterval. Checks run concurrently, at most HealthWorkers at once,
// each bounded by HealthTimeout, and a sandbox is checked by one check at
// a time: a hung agent holds one worker for one timeout and delays no
// other sandbox's check. Paused, stopped and starting sandboxes are not
// checked.
func (m *Monitor) healthLoop(ctx context.Context) {
	if m.opts.HealthInterval < 0 {
		return
	}
	sem := make(chan struct{}, m.opts.HealthWorkers)
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(m.opts.HealthInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			m.checkRound(ctx, sem, &wg)
		}
	}
}

func (m *Monitor) checkRound(ctx context.Context, sem chan struct{}, wg *sync.WaitGroup) {
	type job struct {
		sb  sandbox.Sandbox
		gen uint64
	}
	m.mu.Lock()
	var jobs []job
	for _, e := range m.byID {
		if e.sb.State != stateRunning || e.checking {
			continue
		}
		e.checking = true
		jobs = append(jobs, job{clone(e.sb), e.gen})
	}
	m.mu.Unlock()
	for _, j := range jobs {
		wg.Go(func() { m.check(ctx, sem, j.sb, j.gen) })
	}
}

// check runs one health check and applies its result.
func (m *Monitor) check(ctx context.Context, sem chan struct{}, sb sandbox.Sandbox, gen uint64) {
	var err error
	select {
	case sem <- struct{}{}:
		cctx, cancel := context.WithTimeout(ctx, m.opts.HealthTimeout)
		err = m.health(cctx, sb)
		cancel()
		<-sem
	case <-ctx.Done():
	}
	at := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byID[sb.ID]
	if e == nil || e.sb.ContainerID != sb.ContainerID {
		return
	}
	e.checking = false
	if ctx.Err() != nil || e.gen != gen {
		return // shutting down, or the sandbox changed state meanwhile
	}
	if err == nil {
		m.met.checks.WithLabelValues(checkOK).Inc()
		e.failures = 0
		if !e.answered {
			e.answered = true
			if !strings.HasPrefix(e.sb.AgentURL, "unix://") {
				// The record was built before the agent was up: inspect
				// again, for its socket (a faster way in) if it has one.
				e.enriched = false
				signal(m.enrichCh)
			}
		}
		if e.unhealthy != "" {
			e.unhealthy = ""
			e.settle()
			m.emitEntry(e, EventHealthy, "health check passed")
		}
		return
	}
	if at.Before(e.startedAt.Add(m.opts.StartupGrace)) {
		m.met.checks.WithLabelValues(checkInGrace).Inc()
		return
	}
	m.met.checks.WithLabelValues(checkFailed).Inc()
	e.failures++
	reason := "health check failed: " + err.Error()
	switch {
	case e.unhealthy != "":
		e.unhealthy = reason // still failing; keep the latest cause
		e.settle()
	case e.failures >= m.opts.HealthFailures:
		e.unhealthy = reason
		e.settle()
		m.emitEntry(e, EventError, reason)
	}
}

// health runs Options.Health, or the HTTP check.
func (m *Monitor) health(ctx context.Context, sb sandbox.Sandbox) error {
	if m.opts.Health != nil {
		return m.opts.Health(ctx, sb)
	}
	return m.httpHealth(ctx, sb)
}

// socketKey carries the unix socket of a request's agent to the dialer.
type socketKey struct{}

// unixClient reaches agents behind a unix socket (sandboxes without a
// network): one transport for all, without keep-alive (its connection
// pool would mix sockets up, as every such URL has the same host).
func unixClient() *http.Client {
	var d net.Dialer
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			path, _ := ctx.Value(socketKey{}).(string)
			if path == "" {
				return nil, errors.New("no agent socket")
			}
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// httpHealth GETs the agent's HealthPath; a 2xx answer is healthy.
func (m *Monitor) httpHealth(ctx context.Context, sb sandbox.Sandbox) error {
	if sb.AgentURL == "" {
		return errors.New("the sandbox has no agent URL")
	}
	base, hc := strings.TrimRight(sb.AgentURL, "/"), m.opts.HTTPClient
	if path, ok := strings.CutPrefix(sb.AgentURL, "unix://"); ok {
		base, hc = "http://sandbox", m.unixHC
		ctx = context.WithValue(ctx, socketKey{}, path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+m.opts.HealthPath, nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", m.opts.HealthPath, err)
	}
	if sb.Key != "" {
		req.Header.Set(agentapi.HeaderKey, sb.Key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL is http://sandbox for a socket: name the real one
		}
		return fmt.Errorf("GET %s%s: %w", sb.AgentURL, m.opts.HealthPath, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s: agent answered %s", m.opts.HealthPath, resp.Status)
	}
	return nil
}
