// Package audit is berth's append-only audit trail of what agents asked the
// sandboxes to do: one JSON record per line in a file opened O_APPEND and
// synced after every append, so a record that Append returned for survives
// a crash. A last line torn by a kill mid-write is cut off when the trail
// is opened again.
package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unicode/utf8"
)

// Action is the kind of thing recorded.
type Action string

// The actions.
const (
	ActionExec       Action = "exec"
	ActionSession    Action = "session"
	ActionProcess    Action = "process"
	ActionFileWrite  Action = "file_write"
	ActionFileMove   Action = "file_move"
	ActionFileRemove Action = "file_remove"
	ActionPTYInput   Action = "pty_input"
	// ActionEnv sets the environment of every later command of a sandbox
	// (the agent's POST /api/v1/meta).
	ActionEnv Action = "env"
)

// Decision is what the policy decided.
type Decision string

// The decisions.
const (
	Allowed  Decision = "allowed"   // run, nothing of note
	Audited  Decision = "audited"   // run, risky: worth a look
	Denied   Decision = "denied"    // refused, never ran
	Pending  Decision = "pending"   // waiting for approval
	Approved Decision = "approved"  // approved by a person, then run
	TimedOut Decision = "timed_out" // no approval in time: refused
)

// MaxWhat is the most bytes of Record.What kept; longer text is cut.
const MaxWhat = 8 << 10

// Record is one line of the trail. Records with the same ID describe the
// same action: a later one (the exit of an exec) completes an earlier one,
// and Query merges them.
type Record struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Tenant   string    `json:"tenant"`
	Sandbox  string    `json:"sandbox"`
	Action   Action    `json:"action"`
	What     string    `json:"what"`            // the command, argv (shell-quoted) or path(s)
	Level    string    `json:"level,omitempty"` // LOW, MEDIUM, HIGH
	Rules    []string  `json:"rules,omitempty"` // ids of the rules that matched
	Decision Decision  `json:"decision"`
	// ExitCode and DurationMS are set when the server saw the end of the
	// command (a file operation the agent did ends with exit code 0).
	ExitCode   *int  `json:"exit_code,omitempty"`
	DurationMS int64 `json:"duration_ms,omitempty"`
	// Status is the HTTP status of an allowed call proxied to the agent
	// that did not succeed (the agent's refusal, or the server's 502 when
	// the agent did not answer); such a call has no ExitCode.
	Status int `json:"status,omitempty"`
}

// Query selects records; zero fields select everything.
type Query struct {
	Tenant  string
	Sandbox string
	Since   time.Time // records at or after
	Limit   int       // the newest Limit records; 0 = all
	// Tail reads only the last Tail bytes of the trail (from the first
	// whole line in them); 0 = all of it.
	Tail int64
}

// LazySync is how long a record appended with AppendLazy may stay
// unsynced (in the kernel's cache: it survives the server being killed,
// not the machine losing power).
const LazySync = time.Second

// Trail is an open audit file. It is safe for concurrent use.
type Trail struct {
	path string
	log  *slog.Logger

	mu      sync.Mutex
	f       *os.File
	closed  bool
	written uint64      // lines written so far
	timer   *time.Timer // a pending sync of lazy lines, if any

	// syncMu orders syncs; synced is how many lines the last one covered.
	// Appends waiting for a sync that another append's sync covered return
	// without one of their own (group commit).
	syncMu sync.Mutex
	synced uint64
}

// Open opens (creating it and its directory if need be) the trail at path.
// A last line without its newline (a write cut by a crash) is truncated
// away and logged.
func Open(path string, log *slog.Logger) (*Trail, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	if err := repair(f, log); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("audit: %s: %w", path, err)
	}
	return &Trail{path: path, log: log, f: f}, nil
}

// repair truncates a torn last line: what follows the last newline.
func repair(f *os.File, log *slog.Logger) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil
	}
	// Find the last newline, reading backwards in blocks.
	const block = 64 << 10
	buf := make([]byte, block)
	end := size
	keep := int64(0)
	for end > 0 {
		start := max(end-block, 0)
		n, err := f.ReadAt(buf[:end-start], start)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read: %w", err)
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		end = start
	}
	if keep == size {
		return nil
	}
	log.Warn("audit trail: cutting a torn last record (the writer was killed mid-write)",
		"file", f.Name(), "bytes", size-keep)
	if err := f.Truncate(keep); err != nil {
		return fmt.Errorf("truncate torn record: %w", err)
	}
	return f.Sync()
}

// Path is the trail's file.
func (t *Trail) Path() string { return t.path }

// Append writes r as one line and syncs it to disk before returning. A zero
// Time is set to now. Appends that wait for a sync at the same time share
// one.
func (t *Trail) Append(r Record) error {
	n, err := t.write(r)
	if err != nil {
		return err
	}
	return t.sync(n)
}

// AppendLazy writes r as one line and returns without waiting for the disk:
// the line is synced with the next Append, or within LazySync. For records
// that complete an action (its exit code), whose loss in a power failure
// loses no decision.
func (t *Trail) AppendLazy(r Record) error {
	if _, err := t.write(r); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.timer == nil && !t.closed {
		t.timer = time.AfterFunc(LazySync, func() {
			t.mu.Lock()
			t.timer = nil
			n, closed := t.written, t.closed
			t.mu.Unlock()
			if closed {
				return
			}
			if err := t.sync(n); err != nil {
				t.log.Error("audit trail: sync", "file", t.path, "err", err)
			}
		})
	}
	return nil
}

// write appends r's line and returns how many lines are written with it.
func (t *Trail) write(r Record) (uint64, error) {
	if r.Time.IsZero() {
		r.Time = time.Now().UTC()
	}
	if len(r.What) > MaxWhat {
		cut := MaxWhat
		for cut > 0 && !utf8.RuneStart(r.What[cut]) {
			cut--
		}
		r.What = r.What[:cut] + "…"
	}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, fmt.Errorf("audit: encode: %w", err)
	}
	b = append(b, '\n')
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return 0, errors.New("audit: trail closed")
	}
	// One write: with O_APPEND the line lands whole at the end, or (on a
	// crash) torn at the end, where Open cuts it.
	if _, err := t.f.Write(b); err != nil {
		return 0, fmt.Errorf("audit: append: %w", err)
	}
	t.written++
	return t.written, nil
}

// sync makes the first n lines durable, unless a sync already did.
func (t *Trail) sync(n uint64) error {
	t.syncMu.Lock()
	defer t.syncMu.Unlock()
	if t.synced >= n {
		return nil
	}
	t.mu.Lock()
	upto, closed := t.written, t.closed
	t.mu.Unlock()
	if closed {
		return nil // Close syncs every line written before it
	}
	if err := t.f.Sync(); err != nil {
		return fmt.Errorf("audit: sync: %w", err)
	}
	t.synced = upto
	return nil
}

// Query scans the trail and returns the matching records, oldest first,
// with records of the same ID merged into one (the later fields win when
// set). Lines that do not decode are skipped and logged.
func (t *Trail) Query(q Query) ([]Record, error) {
	return ReadFile(t.path, q, t.log)
}

// ReadFile queries the trail at path as Trail.Query does, without opening
// it for writing: it can read a trail a running server appends to (a line
// being written is skipped), or one copied elsewhere. log may be nil.
func ReadFile(path string, q Query, log *slog.Logger) ([]Record, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	var in io.Reader = f
	if q.Tail > 0 {
		if st, err := f.Stat(); err == nil && st.Size() > q.Tail {
			if _, err := f.Seek(st.Size()-q.Tail, io.SeekStart); err != nil {
				return nil, fmt.Errorf("audit: %s: %w", path, err)
			}
			br := bufio.NewReader(f)
			if _, err := br.ReadBytes('\n'); err != nil { // the cut line
				return nil, nil
			}
			in = br
		}
	}
	var out []Record
	index := map[string]int{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			log.Warn("audit trail: skipping a bad line", "file", path, "line", line, "err", err)
			continue
		}
		if i, ok := index[r.ID]; ok && r.ID != "" {
			if i >= 0 {
				merge(&out[i], r)
			}
			continue
		}
		if !q.match(r) {
			if r.ID != "" {
				index[r.ID] = -1 // its completion is filtered out with it
			}
			continue
		}
		if r.ID != "" {
			index[r.ID] = len(out)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("audit: read %s: %w", path, err)
	}
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[len(out)-q.Limit:]
	}
	return out, nil
}

func (q Query) match(r Record) bool {
	return (q.Tenant == "" || r.Tenant == q.Tenant) &&
		(q.Sandbox == "" || r.Sandbox == q.Sandbox) &&
		(q.Since.IsZero() || !r.Time.Before(q.Since))
}

// merge lays the set fields of a later record of an action over it.
func merge(dst *Record, r Record) {
	if r.Decision != "" {
		dst.Decision = r.Decision
	}
	if r.ExitCode != nil {
		dst.ExitCode = r.ExitCode
	}
	if r.DurationMS != 0 {
		dst.DurationMS = r.DurationMS
	}
	if r.Status != 0 {
		dst.Status = r.Status
	}
}

// Close syncs what was appended lazily and closes the trail; later appends
// fail.
func (t *Trail) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	written := t.written
	t.mu.Unlock()
	t.syncMu.Lock()
	defer t.syncMu.Unlock()
	var err error
	if t.synced < written {
		if e := t.f.Sync(); e != nil {
			err = fmt.Errorf("audit: sync: %w", e)
		}
		t.synced = written
	}
	if e := t.f.Close(); e != nil && err == nil {
		err = fmt.Errorf("audit: close: %w", e)
	}
	return err
}
