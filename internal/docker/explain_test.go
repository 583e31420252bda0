package docker

import (
	"errors"
	"strings"
	"testing"
)

func TestExplainStartGPU(t *testing.T) {
	raw := errors.New(`Error response from daemon: could not select device driver "nvidia" with capabilities: [[gpu]]`)
	err := explainStart(raw)
	if !errors.Is(err, raw) || !strings.Contains(err.Error(), "no GPU runtime") || !strings.Contains(err.Error(), "NVIDIA Container Toolkit") {
		t.Errorf("explainStart(gpu) = %v", err)
	}
	other := errors.New("something else")
	if explainStart(other) != other {
		t.Error("explainStart changed an unrelated error")
	}
}
