package docker

import (
	"net/http"
	"sync"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// maxAgentClients bounds the kept clients; past it the cache starts over
// (sandboxes removed behind berth's back never say goodbye).
const maxAgentClients = 4096

// agentClients keeps one client per agent, so the runtime's calls to an
// agent (readiness, a claim, the caller's first command through Agent)
// reuse one kept-alive connection. An agent behind a unix socket needs a
// transport of its own; making one per call would open a connection per
// call.
type agentClients struct {
	hc *http.Client
	mu sync.Mutex
	m  map[agentKey]*agentapi.Client
}

type agentKey struct{ url, key string }

func newAgentClients(hc *http.Client) *agentClients {
	return &agentClients{hc: hc, m: map[agentKey]*agentapi.Client{}}
}

func (a *agentClients) get(url, key string) *agentapi.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := agentKey{url, key}
	if c := a.m[k]; c != nil {
		return c
	}
	if len(a.m) >= maxAgentClients {
		a.m = map[agentKey]*agentapi.Client{}
	}
	c := agentapi.New(url, key, a.hc)
	a.m[k] = c
	return c
}

// forget drops the clients of an agent URL (its sandbox is gone).
func (a *agentClients) forget(url string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.m {
		if k.url == url {
			delete(a.m, k)
		}
	}
}

// Agent returns a client of sb's agent that shares its connections with
// the runtime's own calls to that agent (the readiness check of its create
// included), so a caller's first command needs no new connection.
func (r *Runtime) Agent(sb sandbox.Sandbox) *agentapi.Client {
	return r.agents.get(sb.AgentURL, sb.Key)
}
