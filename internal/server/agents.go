package server

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/sandbox"
)

// maxAgents bounds the cache of agent connections; past it, it starts over.
const maxAgents = 4096

// agent is how the server reaches one sandbox's agent: a client for its
// own calls (exec) and a reverse proxy for the API's agent routes.
type agent struct {
	url, key string
	client   *agentapi.Client
	proxy    *httputil.ReverseProxy
}

// agents caches one agent per sandbox, so connections are reused.
type agents struct {
	tcp *http.Client // shared by every agent reached over TCP

	mu    sync.Mutex
	byID  map[string]*agent
	onErr func(http.ResponseWriter, *http.Request, error)
}

func newAgents(hc *http.Client) *agents {
	if hc == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // agents are direct neighbours
		t.MaxIdleConnsPerHost = 64
		t.IdleConnTimeout = 90 * time.Second
		hc = &http.Client{Transport: t}
	}
	return &agents{tcp: hc, byID: map[string]*agent{}}
}

// get returns the agent of sb, whose AgentURL and Key are set.
func (a *agents) get(sb sandbox.Sandbox) *agent {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ag, ok := a.byID[sb.ID]; ok && ag.url == sb.AgentURL && ag.key == sb.Key {
		return ag
	}
	if len(a.byID) >= maxAgents {
		a.byID = map[string]*agent{}
	}
	ag := &agent{url: sb.AgentURL, key: sb.Key}
	ag.client = agentapi.New(sb.AgentURL, sb.Key, a.tcp)
	ag.proxy = a.newProxy(sb.AgentURL, sb.Key)
	a.byID[sb.ID] = ag
	return ag
}

// closeIdle closes the idle connections to agents (at shutdown).
func (a *agents) closeIdle() {
	a.tcp.CloseIdleConnections()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, ag := range a.byID {
		if t, ok := ag.proxy.Transport.(interface{ CloseIdleConnections() }); ok {
			t.CloseIdleConnections()
		}
	}
}

func (a *agents) forget(id string) {
	a.mu.Lock()
	delete(a.byID, id)
	a.mu.Unlock()
}

// newProxy is a reverse proxy to the agent at agentURL (http:// or, for a
// sandbox without a network, unix://), adding the sandbox's key, as
// agentapi.New reaches it.
func (a *agents) newProxy(agentURL, key string) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: "sandbox"}
	transport := a.tcp.Transport
	if path, ok := strings.CutPrefix(agentURL, "unix://"); ok {
		var d net.Dialer
		transport = &http.Transport{
			DialContext:         func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) },
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		}
	} else if u, err := url.Parse(agentURL); err == nil && u.Host != "" {
		target = &url.URL{Scheme: u.Scheme, Host: u.Host}
	}
	if transport == nil {
		transport = http.DefaultTransport
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			rest, _ := pr.In.Context().Value(agentPathKey{}).(string)
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.Host = target.Host
			pr.Out.URL.RawPath = rest
			pr.Out.URL.Path, _ = url.PathUnescape(rest)
			if pr.Out.URL.RawPath == pr.Out.URL.Path {
				pr.Out.URL.RawPath = ""
			}
			q := pr.Out.URL.Query()
			if q.Has(agentapi.QueryKey) {
				q.Del(agentapi.QueryKey)
				pr.Out.URL.RawQuery = q.Encode()
			}
			// The server's credentials never reach the sandbox.
			pr.Out.Header.Del("Authorization")
			pr.Out.Header.Del("Cookie")
			pr.Out.Header.Set(agentapi.HeaderKey, key)
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if a.onErr != nil {
				a.onErr(w, r, fmt.Errorf("%w: %w", errAgent, err))
			}
		},
	}
}

// agentPathKey carries the agent's path (escaped) from handleAgent to the
// proxy's Rewrite.
type agentPathKey struct{}

// runningAgent resolves the request's sandbox, which must be running, and
// returns its agent. The view may lag behind a resume, and its records may
// lack the key (a list does not carry it): the runtime is asked then.
func (s *Server) runningAgent(r *http.Request) (sandbox.Sandbox, *agent, error) {
	_, sb, err := s.sandboxFor(r)
	if err != nil {
		return sandbox.Sandbox{}, nil, err
	}
	if sb.Status == sandbox.StatusRunning && (sb.AgentURL == "" || sb.Key == "") {
		if ag := s.agents.cached(sb.ID); ag != nil {
			return sb, ag, nil
		}
	}
	if sb.Status != sandbox.StatusRunning || sb.AgentURL == "" || sb.Key == "" {
		fresh, err := s.rt.Get(r.Context(), sb.ID)
		if err != nil {
			return sandbox.Sandbox{}, nil, err
		}
		sb = fresh
	}
	if sb.Status != sandbox.StatusRunning {
		return sb, nil, fmt.Errorf("%w: sandbox %s is %s (%s); resume it first", sandbox.ErrNotRunning, sb.ID, sb.Status, sb.State)
	}
	if sb.AgentURL == "" || sb.Key == "" {
		return sb, nil, fmt.Errorf("%w: sandbox %s has no agent address", errAgent, sb.ID)
	}
	return sb, s.agents.get(sb), nil
}

// cached is the agent already known for sandbox id, if any.
func (a *agents) cached(id string) *agent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.byID[id]
}

// handleAgent proxies /api/v1/sandboxes/{id}/agent/PATH to the agent's
// /PATH, websockets included.
func (s *Server) handleAgent(w http.ResponseWriter, r *http.Request) {
	sb, ag, err := s.runningAgent(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// The agent's path, still escaped: what follows ".../{id}/agent".
	escaped := r.URL.EscapedPath()
	tail := strings.TrimPrefix(escaped, client.PathSandboxes+"/")
	_, rest, _ := strings.Cut(tail, "/") // after the id
	rest, ok := strings.CutPrefix("/"+rest, client.AgentSuffix)
	if !ok || !strings.HasPrefix(rest, "/") {
		s.writeError(w, r, badRequestf("no agent path in %q", escaped))
		return
	}
	// Actions (exec, processes, file writes...) are judged by the security
	// policy before anything reaches the agent; a refused one never does.
	if s.policyFor(tenantOf(r), sb) != PolicyOff {
		if isPTYPath(rest) {
			s.servePTY(w, r, sb, ag)
			return
		}
		a, err := s.judgeAgentCall(w, r, sb.ID, rest)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		if a.kind != "" {
			g, ok := s.guard(w, r, sb, a)
			if !ok {
				return
			}
			// The answer tells how the action ended: its record says so.
			cw := s.watchCall(w, sb, ag, a, g)
			defer cw.finish()
			w = cw
		}
	}
	// The agent may answer before the transport has read the last of the
	// request body (it does not wait for EOF); without full duplex the
	// server would then close the body under the transport, which aborts
	// the request to the agent mid-answer.
	_ = http.NewResponseController(w).EnableFullDuplex()
	ag.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), agentPathKey{}, rest)))
}
