package image

import (
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
)

func TestSummarizePrintsPeriodicLines(t *testing.T) {
	msgs := []jsonstream.Message{
		{Status: "Pulling from library/debian"},
		{ID: "l1", Status: "Downloading", Progress: &jsonstream.Progress{Current: 1 << 20, Total: 4 << 20}},
		{ID: "l2", Status: "Already exists"},
		{ID: "l1", Status: "Downloading", Progress: &jsonstream.Progress{Current: 4 << 20, Total: 4 << 20}},
		{ID: "l1", Status: "Pull complete"},
	}
	clock := time.Unix(0, 0)
	now := func() time.Time { clock = clock.Add(time.Second); return clock }
	var out strings.Builder
	err := summarize(func(yield func(jsonstream.Message, error) bool) {
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}, &out, "debian:x", now)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// A line every 2 s of the fake clock (1 s per message), plus the last one.
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out.String())
	}
	if want := "pulling debian:x: 2/2 layers, 4.0MiB/4.0MiB"; lines[2] != want {
		t.Errorf("last line %q, want %q", lines[2], want)
	}
}

func TestSummarizeReportsError(t *testing.T) {
	err := summarize(func(yield func(jsonstream.Message, error) bool) {
		yield(jsonstream.Message{Error: &jsonstream.Error{Message: "manifest unknown"}}, nil)
	}, &strings.Builder{}, "x", time.Now)
	if err == nil || !strings.Contains(err.Error(), "manifest unknown") {
		t.Fatalf("summarize() = %v", err)
	}
}
