package bench

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// dockerCLI runs the raw Docker baseline with the docker CLI, as a person
// (or OpenHands' docker-py, give or take the CLI's start-up) would.
type dockerCLI struct {
	bin    string
	image  string
	labels map[string]string
}

// Commands the docker side runs, as reported.
const (
	cmdRunExec = "docker run -d IMAGE sleep 3600 && docker exec ID true"
	cmdExec    = "docker exec ID true"
	cmdPause   = "docker pause ID"
	cmdUnpause = "docker unpause ID"
	cmdCpIn    = "docker cp FILE ID:/tmp/bench-1mib"
	cmdCpOut   = "docker cp ID:/tmp/bench-1mib DIR"
)

func (d dockerCLI) run(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, d.bin, args...).Output()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w", strings.Join(args, " "), cmdErr(err))
	}
	return strings.TrimSpace(string(out)), nil
}

// timed runs one docker command and returns how long it took.
func (d dockerCLI) timed(ctx context.Context, args ...string) (time.Duration, error) {
	t0 := time.Now()
	_, err := d.run(ctx, args...)
	return time.Since(t0), err
}

// start runs `docker run -d` of a container that sleeps, labelled; it
// returns its id and how long the run took.
func (d dockerCLI) start(ctx context.Context) (string, time.Duration, error) {
	args := []string{"run", "-d"}
	for k, v := range d.labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, "--entrypoint", "sleep", d.image, "3600")
	t0 := time.Now()
	id, err := d.run(ctx, args...)
	return id, time.Since(t0), err
}

// runExec times `docker run -d` + `docker exec ID true` (the container's
// time to first command), then removes the container (not timed). It
// returns both the run alone and the whole.
func (d dockerCLI) runExec(ctx context.Context) (run, total time.Duration, err error) {
	t0 := time.Now()
	id, run, err := d.start(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer d.rm(id)
	if _, err := d.run(ctx, "exec", id, "true"); err != nil {
		return 0, 0, err
	}
	return run, time.Since(t0), nil
}

// rm force-removes containers, on a context of its own.
func (d dockerCLI) rm(ids ...string) {
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	_ = exec.CommandContext(ctx, d.bin, append([]string{"rm", "-f"}, ids...)...).Run()
}

// leftovers counts the containers that carry the run's labels.
func (d dockerCLI) leftovers(ctx context.Context) (int, error) {
	args := []string{"ps", "-aq"}
	for k, v := range d.labels {
		args = append(args, "--filter", "label="+k+"="+v)
	}
	out, err := d.run(ctx, args...)
	if err != nil {
		return 0, err
	}
	if out == "" {
		return 0, nil
	}
	return len(strings.Fields(out)), nil
}

func cmdErr(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
