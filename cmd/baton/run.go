package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/batonrun/baton/agent"
	"github.com/batonrun/baton/agent/config"
)

// runCmd is "baton run [flags] -- CMD ARGS...": the container entrypoint.
// Its settings are documented in docs/config.md.
type runCmd struct{ env env }

// exitCode carries baton run's exit status (the trainer's, or one of
// agent's) through the command interface.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

func (c *runCmd) Run(ctx context.Context, args []string) error {
	var cfg config.Config
	command, err := c.env.settings("run", &cfg, args)
	if err != nil {
		return err
	}
	if len(command) == 0 {
		return usagef("no trainer command: baton run [flags] -- CMD ARGS...")
	}
	if cfg.Detach {
		return c.detach(cfg, args)
	}
	log := slog.New(logHandler(cfg.LogFormat, c.env))
	for _, w := range config.UnknownVariables(c.env.environ) {
		log.Warn(w)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	code := agent.Run(context.WithoutCancel(ctx), cfg, command, agent.Deps{
		Environ: c.env.environ, Root: os.DirFS("/"), Stdout: c.env.stdout, Stderr: c.env.stderr,
		Logger: log, Signals: sigs, Version: version,
	})
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func logHandler(format string, e env) slog.Handler {
	return formatLogHandler(e.stderr, format, nil)
}

// detach starts baton run again in the background, in a session of its own,
// with its output in the log file and its pid in the pid file, and returns.
// Running it again while that run is alive does nothing: Vast.ai runs
// onstart on every start of the instance.
func (c *runCmd) detach(cfg config.Config, args []string) error {
	if b, err := os.ReadFile(cfg.PIDFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isBatonRun(pid) {
			fmt.Fprintf(c.env.stdout, "baton run is already running (pid %d, log %s)\n", pid, cfg.LogFile)
			return nil
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(cfg.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("--log-file: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"run"}, withoutDetach(args)...)...)
	cmd.Env = append(c.env.environ, "BATON_DETACH=false")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting baton run in the background: %w", err)
	}
	pid := cmd.Process.Pid
	cmd.Process.Release()
	if err := os.WriteFile(cfg.PIDFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		return fmt.Errorf("--pid-file: %w", err)
	}
	fmt.Fprintf(c.env.stdout, "baton run started in the background (pid %d, log %s)\n", pid, cfg.LogFile)
	return nil
}

// withoutDetach drops --detach from baton's own flags (those before "--"),
// so the background copy runs the trainer instead of detaching again.
func withoutDetach(args []string) []string {
	var out []string
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		switch a {
		case "--detach", "-detach", "--detach=true", "-detach=true":
			continue
		}
		out = append(out, a)
	}
	return out
}

// isBatonRun reports whether pid is a live (not zombie) `baton run`: after a
// restart, a stale pid file may name some other process.
func isBatonRun(pid int) bool {
	if pid <= 0 {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	argv := strings.Split(string(cmdline), "\x00")
	return len(argv) > 1 && strings.Contains(argv[0], "baton") && argv[1] == "run"
}
