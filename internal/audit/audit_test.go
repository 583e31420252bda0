package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openT(t *testing.T, path string) *Trail {
	t.Helper()
	tr, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

func TestAppendQuery(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "audit.jsonl")
	tr := openT(t, path)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := []Record{
		{ID: "1", Time: t0, Tenant: "alice", Sandbox: "sb1", Action: ActionExec, What: "ls", Level: "LOW", Decision: Allowed},
		{ID: "2", Time: t0.Add(time.Minute), Tenant: "bob", Sandbox: "sb2", Action: ActionExec, What: "rm -rf /", Level: "HIGH", Rules: []string{"rm-root"}, Decision: Denied},
		{ID: "3", Time: t0.Add(2 * time.Minute), Tenant: "alice", Sandbox: "sb3", Action: ActionFileWrite, What: "/etc/passwd", Level: "HIGH", Decision: Audited},
	}
	for _, r := range recs {
		if err := tr.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	code := 3
	if err := tr.Append(Record{ID: "1", Time: t0.Add(3 * time.Minute), ExitCode: &code, DurationMS: 12}); err != nil {
		t.Fatal(err)
	}
	all, err := tr.Query(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 {
		t.Fatalf("got %d records, want 3 (merged by id): %+v", len(all), all)
	}
	if all[0].ExitCode == nil || *all[0].ExitCode != 3 || all[0].DurationMS != 12 || all[0].What != "ls" {
		t.Errorf("merged record %+v", all[0])
	}
	if all[1].Rules[0] != "rm-root" || all[1].Decision != Denied {
		t.Errorf("record 2: %+v", all[1])
	}
	for _, c := range []struct {
		q    Query
		want []string
	}{
		{Query{Tenant: "alice"}, []string{"1", "3"}},
		{Query{Sandbox: "sb2"}, []string{"2"}},
		{Query{Since: t0.Add(time.Minute)}, []string{"2", "3"}},
		{Query{Tenant: "alice", Since: t0.Add(30 * time.Second)}, []string{"3"}},
		{Query{Limit: 1}, []string{"3"}},
		{Query{Tenant: "carol"}, nil},
	} {
		got, err := tr.Query(c.q)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range got {
			ids = append(ids, r.ID)
		}
		if fmt.Sprint(ids) != fmt.Sprint(c.want) {
			t.Errorf("%+v: got %v, want %v", c.q, ids, c.want)
		}
	}
}

// A completion may carry an HTTP status instead of an exit code; lines
// written before the field existed read as they did, and records without
// it are written without it.
func TestStatusCompletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	old := `{"id":"a","time":"2026-01-01T00:00:00Z","tenant":"t","sandbox":"s","action":"file_write","what":"/x","decision":"allowed"}` + "\n" +
		`{"id":"a","time":"2026-01-01T00:00:01Z","tenant":"t","sandbox":"s","action":"","what":"","decision":"","exit_code":0,"duration_ms":3}` + "\n"
	if err := os.WriteFile(path, []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := openT(t, path)
	if err := tr.Append(Record{ID: "b", Tenant: "t", Sandbox: "s", Action: ActionFileRemove, What: "/y", Decision: Allowed}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Append(Record{ID: "b", Tenant: "t", Sandbox: "s", Status: 404, DurationMS: 2}); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Query(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].ExitCode == nil || *got[0].ExitCode != 0 || got[0].Status != 0 ||
		got[1].Status != 404 || got[1].ExitCode != nil || got[1].DurationMS != 2 || got[1].What != "/y" {
		t.Fatalf("records %+v", got)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 || strings.Contains(lines[2], `"status"`) || !strings.Contains(lines[3], `"status":404`) {
		t.Errorf("file:\n%s", b)
	}
}

func TestTornLastLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tr, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := tr.Append(Record{ID: fmt.Sprint(i), Tenant: "t", Sandbox: "s", Action: ActionExec, What: "echo", Decision: Allowed}); err != nil {
			t.Fatal(err)
		}
	}
	_ = tr.Close()
	// A kill mid-write: half a record, no newline.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"id":"torn","time":"2026-01-01T00:00:00Z","tenant":"t","sandb`); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	tr = openT(t, path)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "torn") || !strings.HasSuffix(string(b), "\n") {
		t.Fatalf("torn line not cut: %q", b)
	}
	if err := tr.Append(Record{ID: "after", Tenant: "t", Sandbox: "s", Action: ActionExec, What: "true", Decision: Allowed}); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Query(Query{})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range got {
		ids = append(ids, r.ID)
	}
	if fmt.Sprint(ids) != "[0 1 2 after]" {
		t.Errorf("after reopen: %v", ids)
	}
}

func TestTornOnlyLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte(`{"id":"x",`), 0o600); err != nil {
		t.Fatal(err)
	}
	tr := openT(t, path)
	if err := tr.Append(Record{ID: "y", Decision: Allowed}); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Query(Query{})
	if err != nil || len(got) != 1 || got[0].ID != "y" {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tr := openT(t, path)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := Record{ID: fmt.Sprintf("%d-%d", w, i), Tenant: fmt.Sprint("t", w), Sandbox: "s",
					Action: ActionExec, What: strings.Repeat("x", 100*i), Decision: Allowed}
				add := tr.Append
				if i%2 == 1 {
					add = tr.AppendLazy
				}
				if err := add(r); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	got, err := tr.Query(Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != writers*each {
		t.Fatalf("got %d records, want %d", len(got), writers*each)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.ID] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct ids", len(seen))
	}
	got, _ = tr.Query(Query{Tenant: "t3"})
	if len(got) != each {
		t.Errorf("tenant t3: %d records", len(got))
	}
}

func TestClosed(t *testing.T) {
	tr, err := Open(filepath.Join(t.TempDir(), "a.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = tr.Close()
	if err := tr.Append(Record{ID: "x"}); err == nil {
		t.Fatal("append after close succeeded")
	}
}

// syncState is how many lines are written and how many a sync covered.
func (t *Trail) syncState() (written, synced uint64) {
	t.mu.Lock()
	written = t.written
	t.mu.Unlock()
	t.syncMu.Lock()
	synced = t.synced
	t.syncMu.Unlock()
	return written, synced
}

// A lazy line is readable at once, and becomes durable with the next
// Append, within LazySync on its own, or at Close.
func TestAppendLazy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	tr, err := Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	code := 0
	if err := tr.AppendLazy(Record{ID: "1", ExitCode: &code}); err != nil {
		t.Fatal(err)
	}
	if got, _ := tr.Query(Query{}); len(got) != 1 {
		t.Fatalf("lazy line not readable: %+v", got)
	}
	if w, s := tr.syncState(); w != 1 || s != 0 {
		t.Fatalf("after a lazy append: written %d synced %d", w, s)
	}
	if err := tr.Append(Record{ID: "2", Decision: Denied}); err != nil {
		t.Fatal(err)
	}
	if w, s := tr.syncState(); w != 2 || s != 2 {
		t.Fatalf("an append's sync does not cover the lazy line: written %d synced %d", w, s)
	}
	// On its own, within LazySync.
	if err := tr.AppendLazy(Record{ID: "3"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * LazySync)
	for {
		if w, s := tr.syncState(); w == 3 && s == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a lazy line was not synced in time")
		}
		time.Sleep(10 * time.Millisecond) // polling the trail's sync state
	}
	// At Close.
	if err := tr.AppendLazy(Record{ID: "4"}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if w, s := tr.syncState(); w != 4 || s != 4 {
		t.Fatalf("after close: written %d synced %d", w, s)
	}
	if err := tr.AppendLazy(Record{ID: "5"}); err == nil {
		t.Fatal("lazy append after close succeeded")
	}
	got, err := ReadFile(path, Query{}, nil)
	if err != nil || len(got) != 4 {
		t.Fatalf("read after close: %d records, %v", len(got), err)
	}
}

// A long What is cut on a rune boundary.
func TestWhatCut(t *testing.T) {
	tr := openT(t, filepath.Join(t.TempDir(), "audit.jsonl"))
	what := strings.Repeat("é", MaxWhat) // 2 bytes each
	if err := tr.Append(Record{ID: "1", What: what}); err != nil {
		t.Fatal(err)
	}
	got, err := tr.Query(Query{})
	if err != nil || len(got) != 1 {
		t.Fatal(got, err)
	}
	if w := got[0].What; !strings.HasSuffix(w, "é…") || strings.ContainsRune(w, '\uFFFD') || len(w) > MaxWhat+len("…") {
		t.Errorf("cut What: %d bytes, ends %q", len(w), w[len(w)-8:])
	}
}

// Tail reads only the end of the trail, from its first whole line.
func TestQueryTail(t *testing.T) {
	tr := openT(t, filepath.Join(t.TempDir(), "audit.jsonl"))
	for i := range 100 {
		if err := tr.Append(Record{ID: fmt.Sprint(i), What: strings.Repeat("x", 100)}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := tr.Query(Query{})
	if err != nil || len(all) != 100 {
		t.Fatalf("all: %d %v", len(all), err)
	}
	tail, err := tr.Query(Query{Tail: 2000})
	if err != nil {
		t.Fatal(err)
	}
	if len(tail) == 0 || len(tail) >= 20 || tail[len(tail)-1].ID != "99" {
		t.Fatalf("tail of 2000 bytes: %d records, last %+v", len(tail), tail[len(tail)-1])
	}
	for _, r := range tail {
		if r.What != strings.Repeat("x", 100) {
			t.Fatalf("a cut record: %+v", r)
		}
	}
	if big, _ := tr.Query(Query{Tail: 1 << 30}); len(big) != 100 {
		t.Errorf("a tail longer than the trail: %d records", len(big))
	}
}
