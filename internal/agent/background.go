package agent

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// Bounds of the background process table.
const (
	// bgKeepExited is how many exited processes stay readable; the oldest
	// exited beyond it are forgotten.
	bgKeepExited = 100
	// bgFollowBatch is the most output one wake-up of a follower sends.
	bgFollowBatch = 1 << 20
	// bgRemoveWait bounds how long DELETE waits for a killed process.
	bgRemoveWait = 5 * time.Second
)

// bgTable holds background processes: started by one request, they run on
// when that client goes away, and their output stays readable (by offset,
// from any client) after they exit. It also tracks the running terminals
// of pty.go, so that close ends them too.
type bgTable struct {
	s          *Server
	keepExited int

	mu      sync.Mutex
	closed  bool
	nextSeq uint64
	procs   map[string]*bgProc // by id, running and kept exited
	exited  []*bgProc          // kept exited processes, in the order they exited
	ptys    map[*process]struct{}
	// wg counts the watchers of background processes and the terminal
	// handlers, so that close can wait for them.
	wg sync.WaitGroup
}

func newBgTable(s *Server) *bgTable {
	return &bgTable{
		s:          s,
		keepExited: bgKeepExited,
		procs:      make(map[string]*bgProc),
		ptys:       make(map[*process]struct{}),
	}
}

// close refuses new processes and terminals, kills the process group of
// every running background process and the session of every terminal, and
// waits (boundedly) until they are reaped.
func (t *bgTable) close() {
	t.mu.Lock()
	t.closed = true
	procs := make([]*bgProc, 0, len(t.procs))
	for _, bp := range t.procs {
		procs = append(procs, bp)
	}
	ptys := make([]*process, 0, len(t.ptys))
	for p := range t.ptys {
		ptys = append(ptys, p)
	}
	t.mu.Unlock()
	for _, bp := range procs {
		_ = bp.p.killGroup(syscall.SIGKILL)
	}
	for _, p := range ptys {
		ptyKillSession(p)
	}
	done := make(chan struct{})
	go func() {
		t.wg.Wait()
		close(done)
	}()
	limit := time.NewTimer(t.s.opts.OutputGrace + t.s.opts.ShutdownTimeout + time.Second)
	defer limit.Stop()
	select {
	case <-done:
	case <-limit.C:
		t.s.log.Warn("background processes and terminals still running after close")
	}
}

func (s *Server) bgRoutes() []route {
	one := agentapi.PathProcesses + "/{id}"
	return []route{
		{http.MethodGet, agentapi.PathProcesses, s.handleBgList},
		{http.MethodPost, agentapi.PathProcesses, s.handleBgStart},
		{http.MethodGet, one, s.handleBgGet},
		{http.MethodDelete, one, s.handleBgRemove},
		{http.MethodGet, one + agentapi.ProcessOutputSuffix, s.handleBgOutput},
		{http.MethodPost, one + agentapi.ProcessWaitSuffix, s.handleBgWait},
		{http.MethodPost, one + agentapi.ProcessStdinSuffix, s.handleBgStdin},
		{http.MethodPost, one + agentapi.ProcessSignalSuffix, s.handleBgSignal},
	}
}

// start starts a background process as the sandbox user, in its own
// process group, with pipes for stdin, stdout and stderr.
func (t *bgTable) start(req agentapi.ProcessRequest, ex agentapi.ExecRequest, spec procSpec) (*bgProc, *apiError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed || t.s.procs.isClosed() {
		return nil, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", errShuttingDown)
	}
	if req.Name != "" {
		for _, bp := range t.procs {
			if bp.name == req.Name && !bp.isDone() {
				return nil, newAPIError(http.StatusConflict, agentapi.CodeConflict,
					`"name" %q is taken by running process %s`, req.Name, bp.id)
			}
		}
	}
	child, ours, err := bgPipes()
	if err != nil {
		return nil, newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "start %s: %v", describe(ex), err)
	}
	p, err := startProcessWith(spec, child[:], &syscall.SysProcAttr{Setpgid: true, Credential: spec.Cred})
	for _, f := range child {
		f.Close()
	}
	if err != nil {
		for _, f := range ours {
			f.Close()
		}
		return nil, startError(ex, spec, err)
	}
	if err := t.s.procs.add(p); err != nil {
		_ = p.killGroup(syscall.SIGKILL)
		<-p.exited
		_, _ = p.reap()
		for _, f := range ours {
			f.Close()
		}
		return nil, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", err)
	}
	limit := req.BufferBytes
	if limit == 0 {
		limit = agentapi.DefaultProcessBufferBytes
	}
	t.nextSeq++
	bp := &bgProc{
		seq:       t.nextSeq,
		id:        strconv.FormatUint(t.nextSeq, 10),
		name:      req.Name,
		req:       req,
		cwd:       spec.Dir,
		p:         p,
		limit:     limit,
		stdin:     ours[0],
		stdinLock: make(chan struct{}, 1),
		done:      make(chan struct{}),
		out:       newBgOutput(limit),
		changed:   make(chan struct{}),
	}
	t.procs[bp.id] = bp
	t.wg.Add(1)
	go t.watch(bp, ours[1], ours[2])
	return bp, nil
}

// lookup finds a process by id, or by name (the newest with that name).
func (t *bgTable) lookup(ref string) (*bgProc, *apiError) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if bgIsID(ref) {
		if bp, ok := t.procs[ref]; ok {
			return bp, nil
		}
		return nil, newAPIError(http.StatusNotFound, agentapi.CodeNotFound, "no background process with id %q", ref)
	}
	var found *bgProc
	for _, bp := range t.procs {
		if bp.name == ref && (found == nil || bp.seq > found.seq) {
			found = bp
		}
	}
	if found == nil {
		return nil, newAPIError(http.StatusNotFound, agentapi.CodeNotFound, "no background process with id or name %q", ref)
	}
	return found, nil
}

// list returns every process, oldest first.
func (t *bgTable) list() []*bgProc {
	t.mu.Lock()
	out := make([]*bgProc, 0, len(t.procs))
	for _, bp := range t.procs {
		out = append(out, bp)
	}
	t.mu.Unlock()
	slices.SortFunc(out, func(a, b *bgProc) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// noteExited keeps bp among the exited, forgetting the oldest exited past
// keepExited. A process removed meanwhile is not kept.
func (t *bgTable) noteExited(bp *bgProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.procs[bp.id] != bp {
		return
	}
	t.exited = append(t.exited, bp)
	for len(t.exited) > t.keepExited {
		old := t.exited[0]
		t.exited[0] = nil
		t.exited = t.exited[1:]
		delete(t.procs, old.id)
	}
}

// forget removes bp from the table.
func (t *bgTable) forget(bp *bgProc) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.procs[bp.id] == bp {
		delete(t.procs, bp.id)
	}
	if i := slices.Index(t.exited, bp); i >= 0 {
		t.exited = slices.Delete(t.exited, i, i+1)
	}
}

// addPTY registers a running terminal; false once the table is closed.
func (t *bgTable) addPTY(p *process) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.ptys[p] = struct{}{}
	t.wg.Add(1)
	return true
}

func (t *bgTable) removePTY(p *process) {
	t.mu.Lock()
	delete(t.ptys, p)
	t.mu.Unlock()
	t.wg.Done()
}

func (s *Server) handleBgStart(w http.ResponseWriter, r *http.Request) {
	req, ex, e := decodeProcessRequest(r.Body, s.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	spec, e := s.execSpec(ex)
	if e != nil {
		writeError(w, e)
		return
	}
	bp, e := s.bg.start(req, ex, spec)
	if e != nil {
		writeError(w, e)
		return
	}
	s.log.Info("background process start", "process", bp.id, "name", bp.name, "pid", bp.p.pid,
		"exec", describe(ex), "cwd", spec.Dir)
	writeJSON(w, http.StatusCreated, bp.info())
}

func (s *Server) handleBgList(w http.ResponseWriter, _ *http.Request) {
	list := agentapi.ProcessList{Processes: []agentapi.ProcessInfo{}}
	for _, bp := range s.bg.list() {
		list.Processes = append(list.Processes, bp.info())
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *Server) handleBgGet(w http.ResponseWriter, r *http.Request) {
	bp, e := s.bg.lookup(r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, bp.info())
}

// handleBgRemove kills the process group if the process runs, forgets the
// process, and answers its last state (exited, unless it outlived the wait).
func (s *Server) handleBgRemove(w http.ResponseWriter, r *http.Request) {
	bp, e := s.bg.lookup(r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	s.bg.forget(bp)
	if !bp.isDone() {
		if err := bp.p.killGroup(syscall.SIGKILL); err != nil {
			s.log.Warn("background process kill", "process", bp.id, "err", err)
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), bgRemoveWait)
	defer cancel()
	select {
	case <-bp.done:
	case <-ctx.Done():
	}
	writeJSON(w, http.StatusOK, bp.info())
}

// handleBgWait blocks until the process exits, the timeout passes (then it
// answers the running state, still 200), or the client goes.
func (s *Server) handleBgWait(w http.ResponseWriter, r *http.Request) {
	bp, e := s.bg.lookup(r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	timeout, e := bgQueryTimeout(r.URL.Query())
	if e != nil {
		writeError(w, e)
		return
	}
	var expired <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	select {
	case <-bp.done:
	case <-expired:
	case <-r.Context().Done():
		return
	}
	writeJSON(w, http.StatusOK, bp.info())
}

func (s *Server) handleBgStdin(w http.ResponseWriter, r *http.Request) {
	bp, e := s.bg.lookup(r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	req, e := decodeStdinRequest(r.Body, s.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	n, e := bp.writeStdin(r.Context(), req)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, agentapi.StdinResponse{Written: n})
}

func (s *Server) handleBgSignal(w http.ResponseWriter, r *http.Request) {
	bp, e := s.bg.lookup(r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	sig, e := decodeSignalRequest(r.Body, s.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	if bp.isDone() {
		// Its group may live on (children it left running, such as a
		// runaway fork loop): they are what is signalled then. While one
		// of them lives the group id cannot be reused.
		left := groupMembers(bp.p.pid)
		if len(left) == 0 {
			writeError(w, bgExitedError(bp, "no process of its group is left; there is nothing to signal"))
			return
		}
		if err := syscall.Kill(-bp.p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			writeError(w, newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "signal what is left of process %s: %v", bp.id, err))
			return
		}
		s.log.Info("background process signal: the process has exited, its group is signalled", "process", bp.id, "signal", sig.String(), "left", len(left))
		writeJSON(w, http.StatusOK, bp.info())
		return
	}
	if err := bp.p.killGroup(sig); err != nil {
		writeError(w, newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "signal process %s: %v", bp.id, err))
		return
	}
	s.log.Info("background process signal", "process", bp.id, "signal", sig.String())
	writeJSON(w, http.StatusOK, bp.info())
}

// handleBgOutput answers the kept output from ?offset=N; with ?follow=1 it
// streams it as NDJSON OutputEvents until the process has exited and all
// its output was sent.
func (s *Server) handleBgOutput(w http.ResponseWriter, r *http.Request) {
	bp, e := s.bg.lookup(r.PathValue("id"))
	if e != nil {
		writeError(w, e)
		return
	}
	q := r.URL.Query()
	off, e := bgQueryInt(q, "offset")
	if e != nil {
		writeError(w, e)
		return
	}
	follow, e := bgQueryBool(q, "follow")
	if e != nil {
		writeError(w, e)
		return
	}
	bp.mu.Lock()
	end := bp.out.end
	if off > end {
		bp.mu.Unlock()
		writeError(w, badRequest("query parameter %q is %d, past the end of the output (%d bytes so far)", "offset", off, end))
		return
	}
	if !follow {
		evs, next, dropped := bp.out.read(off, math.MaxInt64)
		info := bp.infoLocked()
		bp.mu.Unlock()
		if evs == nil {
			evs = []agentapi.OutputEvent{}
		}
		writeJSON(w, http.StatusOK, agentapi.ProcessOutput{Chunks: evs, NextOffset: next, DroppedBytes: dropped, Process: info})
		return
	}
	bp.mu.Unlock()
	bgFollow(r.Context(), w, bp, off)
}

// bgFollow streams output from off until the process is done and every
// byte was sent (then an exit event), or ctx ends.
func bgFollow(ctx context.Context, w http.ResponseWriter, bp *bgProc, off int64) {
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	rc := http.NewResponseController(w)
	if rc.Flush() != nil { // the client sees the stream start at once
		return
	}
	send := func(ev agentapi.OutputEvent) bool { return enc.Encode(ev) == nil }
	for {
		bp.mu.Lock()
		evs, next, dropped := bp.out.read(off, bgFollowBatch)
		finished := bp.exited && next == bp.out.end
		var info agentapi.ProcessInfo
		if finished {
			info = bp.infoLocked()
		}
		changed := bp.changed
		bp.mu.Unlock()

		if dropped > 0 && !send(agentapi.OutputEvent{Type: agentapi.OutputDropped, Offset: off + dropped, DroppedBytes: dropped}) {
			return
		}
		for _, ev := range evs {
			if !send(ev) {
				return
			}
		}
		off = next
		if finished {
			send(agentapi.OutputEvent{Type: agentapi.OutputExit, Offset: off, Process: &info})
			_ = rc.Flush()
			return
		}
		if len(evs) > 0 || dropped > 0 {
			if rc.Flush() != nil {
				return
			}
			continue // there may be more already
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		}
	}
}
