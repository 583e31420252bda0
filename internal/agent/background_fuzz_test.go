package agent

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

func FuzzBgSignal(f *testing.F) {
	for _, s := range []string{`"TERM"`, `"sigkill"`, `15`, `"15"`, `0`, `65`, `-1`, `"SIG"`, `""`, `null`, `true`, `1.5`, `"\u0000"`, `1e3`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		sig, e := bgSignalFromJSON(json.RawMessage(raw))
		if e != nil {
			if e.Status != 400 || !strings.Contains(e.Body.Message, `"signal"`) {
				t.Fatalf("%q: error %+v does not name the field", raw, e)
			}
			return
		}
		if sig < 1 || sig > bgMaxSignal {
			t.Fatalf("%q: signal %d out of range", raw, sig)
		}
		// Every signal with a name parses back from its name.
		if name := unix.SignalName(sig); name != "" {
			if back, msg := parseSignal(name); msg != "" || back != sig {
				t.Fatalf("%q: %s parses back as %d %q", raw, name, back, msg)
			}
		}
	})
}

func TestParseSignal(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]syscall.Signal{
		"TERM": syscall.SIGTERM, "sigterm": syscall.SIGTERM, "SIGKILL": syscall.SIGKILL, "hup": syscall.SIGHUP,
		"9": syscall.SIGKILL, "64": 64, "": syscall.SIGTERM, "Usr1": syscall.SIGUSR1,
	} {
		if got, msg := parseSignal(in); got != want || msg != "" {
			t.Errorf("%q: %d %q, want %d", in, got, msg, want)
		}
	}
	for _, in := range []string{"0", "65", "-9", "SIG", "TERMX", "9x", " 9", "99999999999999999999"} {
		if got, msg := parseSignal(in); msg == "" {
			t.Errorf("%q: %d, want an error", in, got)
		}
	}
}

func FuzzBgQuery(f *testing.F) {
	for _, s := range []string{"offset=10&follow=1", "offset=-1", "offset=x&follow=maybe", "timeout_ms=99999999999999999", "cols=80&rows=24&env=A=B&env=C", "cols=0", "cmd=%00&cwd=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		if n, e := bgQueryInt(q, "offset"); e == nil && n < 0 {
			t.Fatalf("%q: negative offset %d accepted", raw, n)
		} else if e != nil && !strings.Contains(e.Body.Message, `"offset"`) {
			t.Fatalf("%q: %q does not name offset", raw, e.Body.Message)
		}
		if _, e := bgQueryBool(q, "follow"); e != nil && !strings.Contains(e.Body.Message, `"follow"`) {
			t.Fatalf("%q: %q does not name follow", raw, e.Body.Message)
		}
		if d, e := bgQueryTimeout(q); e == nil && d < 0 {
			t.Fatalf("%q: negative timeout %v", raw, d)
		}
		p, e := parsePTYQuery(q)
		if e != nil {
			if e.Status != 400 {
				t.Fatalf("%q: status %d", raw, e.Status)
			}
			return
		}
		if p.cols < 1 || p.rows < 1 || p.cols > agentapi.MaxPTYSize || p.rows > agentapi.MaxPTYSize {
			t.Fatalf("%q: size %dx%d accepted", raw, p.cols, p.rows)
		}
	})
}

func FuzzBgName(f *testing.F) {
	for _, s := range []string{"web", "_x", "a.b-c_1", "1", "12", "", "a/b", "é", strings.Repeat("a", 65)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		ok := bgCheckName(name) == ""
		if ok && bgIsID(name) {
			t.Fatalf("%q is both a valid name and an id", name)
		}
		if ok && (len(name) > 64 || strings.ContainsAny(name, "/ \x00%?#")) {
			t.Fatalf("%q accepted", name)
		}
	})
}

// FuzzBgOutput checks the output buffer against a model that keeps every
// byte: what is kept is always the newest output, with its streams and
// offsets, within both bounds.
func FuzzBgOutput(f *testing.F) {
	f.Add(uint16(10), []byte{3, 'a', 'b', 'c', 0x85, 'x'})
	f.Add(uint16(1), bytes.Repeat([]byte{1, 'a', 0x81, 'b'}, 100))
	f.Add(uint16(300), bytes.Repeat([]byte{0x7f}, 200))
	f.Fuzz(func(t *testing.T, limit uint16, ops []byte) {
		if limit == 0 {
			return
		}
		o := newBgOutput(int64(limit))
		var all, streams []byte // the model: every byte and its stream
		for len(ops) > 0 {
			// One op: a header byte (high bit: stderr; low bits: length,
			// scaled so that chunks past readChunk occur), then data.
			h := ops[0]
			ops = ops[1:]
			n := int(h&0x7f) * 700
			if n == 0 {
				n = 1
			}
			data := bytes.Repeat([]byte{byte(len(all))}, n)
			if len(ops) > 0 {
				copy(data, ops[:min(len(ops), n)])
			}
			stream, tag := agentapi.OutputStdout, byte('o')
			if h&0x80 != 0 {
				stream, tag = agentapi.OutputStderr, 'e'
			}
			o.write(stream, data)
			all = append(all, data...)
			streams = append(streams, bytes.Repeat([]byte{tag}, n)...)

			if o.end != int64(len(all)) || o.start > o.end || o.end-o.start > o.limit || len(o.chunks) > o.maxChunks {
				t.Fatalf("bounds: start %d end %d (written %d) limit %d chunks %d/%d", o.start, o.end, len(all), o.limit, len(o.chunks), o.maxChunks)
			}
			if len(o.chunks) > 0 && o.chunks[0].off != o.start {
				t.Fatalf("first chunk at %d, start %d", o.chunks[0].off, o.start)
			}
			// Only the bookkeeping bound may keep less than the limit.
			if len(o.chunks) < o.maxChunks && o.end-o.start != min(o.limit, o.end) {
				t.Fatalf("keeps %d bytes of %d with limit %d", o.end-o.start, o.end, o.limit)
			}
			for _, from := range []int64{0, o.start, (o.start + o.end) / 2, o.end} {
				evs, next, dropped := o.read(from, 1<<30)
				if next != o.end || dropped != max(o.start-from, 0) {
					t.Fatalf("read from %d: next %d dropped %d (start %d end %d)", from, next, dropped, o.start, o.end)
				}
				off := from + dropped
				for _, ev := range evs {
					want := streams[ev.Offset]
					if ev.Offset != off || len(ev.Data) == 0 || len(ev.Data) > readChunk ||
						!bytes.Equal(ev.Data, all[off:off+int64(len(ev.Data))]) ||
						bytes.Count(streams[off:off+int64(len(ev.Data))], []byte{want}) != len(ev.Data) ||
						(want == 'o') != (ev.Type == agentapi.OutputStdout) {
						t.Fatalf("read from %d: bad event at %d (want offset %d): %d bytes of %s", from, ev.Offset, off, len(ev.Data), ev.Type)
					}
					off += int64(len(ev.Data))
				}
				if off != o.end {
					t.Fatalf("read from %d ended at %d, want %d", from, off, o.end)
				}
			}
			if len(ops) > 0 {
				ops = ops[min(len(ops), n):]
			}
		}
	})
}
