package agent

import (
	"sort"

	"github.com/berth-dev/berth/internal/agentapi"
)

// bgChunk is a run of output of one stream, starting at offset off.
// Its bytes are never changed once written, only appended to, so a reader
// may keep a sub-slice of data after the buffer's lock is released.
type bgChunk struct {
	stream string
	off    int64
	data   []byte
}

// bgOutput keeps the newest output of a background process: at most limit
// bytes, and at most maxChunks chunks (a bound on the bookkeeping when
// stdout and stderr alternate in tiny writes). Offsets count every byte
// ever written, of both streams, in the order written. It does no locking.
type bgOutput struct {
	limit     int64
	maxChunks int
	chunks    []bgChunk
	start     int64 // offset of the oldest byte kept
	end       int64 // offset of the next byte: all output so far
}

func newBgOutput(limit int64) *bgOutput {
	return &bgOutput{limit: limit, maxChunks: int(limit/64) + 64}
}

// write appends data of stream, merging it into the last chunk when that
// has the same stream and room, then drops the oldest output over the
// limits.
func (o *bgOutput) write(stream string, data []byte) {
	if n := int64(len(data)); n > o.limit {
		// The new data alone fills the buffer: everything older goes.
		for i := range o.chunks {
			o.chunks[i] = bgChunk{}
		}
		o.chunks = o.chunks[:0]
		o.end += n - o.limit
		o.start = o.end
		data = data[n-o.limit:]
	}
	for len(data) > 0 {
		if k := len(o.chunks) - 1; k >= 0 && o.chunks[k].stream == stream && len(o.chunks[k].data) < readChunk {
			n := min(readChunk-len(o.chunks[k].data), len(data))
			o.chunks[k].data = append(o.chunks[k].data, data[:n]...)
			o.end += int64(n)
			data = data[n:]
			continue
		}
		n := min(readChunk, len(data))
		o.chunks = append(o.chunks, bgChunk{stream: stream, off: o.end, data: append([]byte(nil), data[:n]...)})
		o.end += int64(n)
		data = data[n:]
	}
	o.trim()
}

// trim drops the oldest output until both limits hold.
func (o *bgOutput) trim() {
	for len(o.chunks) > 0 && (o.end-o.start > o.limit || len(o.chunks) > o.maxChunks) {
		first := &o.chunks[0]
		excess := o.end - o.start - o.limit
		if len(o.chunks) <= o.maxChunks && excess < int64(len(first.data)) {
			first.data = first.data[excess:]
			first.off += excess
			o.start += excess
			return
		}
		o.start += int64(len(first.data))
		*first = bgChunk{} // let the bytes go
		o.chunks = o.chunks[1:]
	}
	if len(o.chunks) == 0 {
		o.start = o.end
	}
}

// read returns the output from offset off (0 <= off <= end), at most n
// bytes of it, as stdout/stderr events that share the buffer's bytes. When
// the output at off is no longer kept, it starts at the oldest byte kept
// and reports how much it skipped.
func (o *bgOutput) read(off, n int64) (evs []agentapi.OutputEvent, next, dropped int64) {
	if off < o.start {
		dropped = o.start - off
		off = o.start
	}
	i := sort.Search(len(o.chunks), func(i int) bool {
		c := o.chunks[i]
		return c.off+int64(len(c.data)) > off
	})
	for ; i < len(o.chunks) && n > 0; i++ {
		c := o.chunks[i]
		d := c.data
		if c.off < off {
			d = d[off-c.off:]
		}
		if int64(len(d)) > n {
			d = d[:n]
		}
		evs = append(evs, agentapi.OutputEvent{Type: c.stream, Offset: off, Data: d[:len(d):len(d)]})
		off += int64(len(d))
		n -= int64(len(d))
	}
	return evs, off, dropped
}
