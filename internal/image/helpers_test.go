package image

import (
	"io"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
)

func containerConfig(ref, line string, labels map[string]string) *container.Config {
	return &container.Config{Image: ref, Entrypoint: []string{"/bin/sh", "-c", line}, Labels: labels}
}

func demux(w io.Writer, r io.Reader) error {
	_, err := stdcopy.StdCopy(w, w, r)
	return err
}
