// Command berth-agent is the server inside every berth sandbox. The host
// starts it with the environment described in package agentapi; it serves
// until SIGTERM or SIGINT, then kills what it started and exits 0.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/agent"
	"github.com/berth-dev/berth/internal/agentapi"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	os.Exit(run(os.Getenv, os.Stderr))
}

// run is main without the process exit: 0 after a clean stop, 1 when the
// agent fails, 2 on a bad environment.
func run(getenv func(string) string, stderr io.Writer) int {
	opts, err := optionsFromEnv(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "berth-agent: %v\n", err)
		return 2
	}
	log, err := newLogger(stderr, getenv(agentapi.EnvLogFormat), getenv(agentapi.EnvLogLevel))
	if err != nil {
		fmt.Fprintf(stderr, "berth-agent: %v\n", err)
		return 2
	}
	opts.Logger = log
	opts.Version = version

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := agent.Run(ctx, opts); err != nil {
		log.Error("agent failed", "err", err)
		fmt.Fprintf(stderr, "berth-agent: %v\n", err)
		return 1
	}
	return 0
}

// optionsFromEnv reads the environment contract of agentapi.
func optionsFromEnv(getenv func(string) string) (agent.Options, error) {
	opts := agent.Options{
		Key:     getenv(agentapi.EnvKey),
		UserID:  agent.DefaultUserID,
		Workdir: agent.DefaultWorkdir,
	}
	if opts.Key == "" {
		return opts, fmt.Errorf("%s is not set; it must hold the sandbox's key", agentapi.EnvKey)
	}
	opts.Socket = getenv(agentapi.EnvSocket)
	if opts.Socket != "" && !strings.HasPrefix(opts.Socket, "/") {
		return opts, fmt.Errorf("%s=%q is not an absolute path", agentapi.EnvSocket, opts.Socket)
	}
	port := getenv(agentapi.EnvPort)
	if port == "" && opts.Socket == "" {
		return opts, fmt.Errorf("%s is not set; it must hold the port to listen on (or set %s)", agentapi.EnvPort, agentapi.EnvSocket)
	}
	if port != "" {
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			return opts, fmt.Errorf("%s=%q is not a port number (1-65535)", agentapi.EnvPort, port)
		}
		host := getenv(agentapi.EnvListen)
		if strings.ContainsAny(host, "/ ") || strings.Count(host, ":") == 1 {
			return opts, fmt.Errorf("%s=%q is not a host address (give the port in %s)", agentapi.EnvListen, host, agentapi.EnvPort)
		}
		opts.Addr = net.JoinHostPort(host, port)
	}
	if v := getenv(agentapi.EnvUserID); v != "" {
		uid, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return opts, fmt.Errorf("%s=%q is not a user id (0 or more)", agentapi.EnvUserID, v)
		}
		opts.UserID = int(uid)
	}
	for _, dir := range strings.Split(getenv(agentapi.EnvOwnPaths), ":") {
		if dir == "" {
			continue
		}
		if !strings.HasPrefix(dir, "/") {
			return opts, fmt.Errorf("%s: %q is not an absolute path", agentapi.EnvOwnPaths, dir)
		}
		opts.OwnPaths = append(opts.OwnPaths, dir)
	}
	if v := getenv(agentapi.EnvWorkdir); v != "" {
		if !strings.HasPrefix(v, "/") {
			return opts, fmt.Errorf("%s=%q is not an absolute path", agentapi.EnvWorkdir, v)
		}
		opts.Workdir = v
	}
	return opts, nil
}

// newLogger logs to w as text (default) or JSON.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if level != "" {
		if err := lv.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("%s=%q is not a level (debug, info, warn, error)", agentapi.EnvLogLevel, level)
		}
	}
	ho := &slog.HandlerOptions{Level: lv}
	switch format {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("%s=%q is not a format (text, json)", agentapi.EnvLogFormat, format)
}
