package image

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/jsonmessage"

	"github.com/berth-dev/berth/internal/sandbox"
)

// summaryEvery is how often a pull on a non-terminal prints a summary line.
const summaryEvery = 2 * time.Second

func (r *Resolver) pull(ctx context.Context, ref string) error {
	fmt.Fprintf(r.opts.Progress, "pulling %s\n", ref)
	resp, err := r.docker.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err == nil {
		defer resp.Close()
		if r.opts.Terminal {
			err = jsonmessage.DisplayJSONMessages(resp.JSONMessages(ctx), r.opts.Progress, 0, true, nil)
		} else {
			err = summarize(resp.JSONMessages(ctx), r.opts.Progress, ref, time.Now)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: image %s is not present locally and could not be pulled: %v\n"+
			"  load it with `docker load -i FILE`, or build or tag it locally "+
			"(scripts/test-images.sh makes debian:bookworm-slim without a registry)", sandbox.ErrImage, ref, err)
	}
	return nil
}

// summarize prints one line every summaryEvery (and one at the end) with the
// layers done and the bytes downloaded, for logs and CI where bars are noise.
func summarize(msgs func(func(jsonstream.Message, error) bool), w io.Writer, ref string, now func() time.Time) error {
	type layer struct {
		cur, total int64
		done       bool
	}
	layers := map[string]*layer{}
	var order []string
	last := now()
	line := func() string {
		var done int
		var cur, total int64
		for _, id := range order {
			l := layers[id]
			if l.done {
				done++
			}
			cur += l.cur
			total += l.total
		}
		return fmt.Sprintf("pulling %s: %d/%d layers, %s/%s", ref, done, len(order), mib(cur), mib(total))
	}
	for m, err := range msgs {
		if err != nil {
			return err
		}
		if m.Error != nil {
			return m.Error
		}
		if m.ID == "" {
			continue
		}
		l, ok := layers[m.ID]
		if !ok {
			l = &layer{}
			layers[m.ID] = l
			order = append(order, m.ID)
		}
		switch m.Status {
		case "Pull complete", "Already exists", "Download complete":
			l.done = l.done || m.Status != "Download complete"
			if l.total > 0 {
				l.cur = l.total
			}
		default:
			if m.Progress != nil && m.Progress.Total > 0 && m.Status == "Downloading" {
				l.cur, l.total = m.Progress.Current, m.Progress.Total
			}
		}
		if t := now(); t.Sub(last) >= summaryEvery {
			last = t
			fmt.Fprintln(w, line())
		}
	}
	if len(order) > 0 {
		fmt.Fprintln(w, line())
	}
	return nil
}

func mib(n int64) string { return fmt.Sprintf("%.1fMiB", float64(n)/(1<<20)) }
