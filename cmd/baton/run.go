package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/batonrun/baton/agent"
	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/internal/redact"
)

// runCmd is "baton run [flags] -- CMD ARGS...": the container entrypoint.
// Its settings are documented in docs/config.md.
type runCmd struct{ env env }

// exitCode carries baton run's exit status (the trainer's, or one of
// agent's) through the command interface.
type exitCode int

func (e exitCode) Error() string { return "exit status " + strconv.Itoa(int(e)) }

func (c *runCmd) Run(ctx context.Context, args []string) error {
	e, ef, err := c.env.loadEnvFile(args)
	if err != nil {
		return err
	}
	var cfg config.Config
	command, err := e.settings("run", &cfg, args)
	if err != nil {
		return err
	}
	if len(command) == 0 {
		return usagef("no trainer command: baton run [flags] -- CMD ARGS...")
	}
	if cfg.Detach {
		if ef != nil && ef.warning != "" {
			fmt.Fprintf(e.stderr, "baton run: warning: %s\n", ef.warning)
		}
		return c.detach(e, cfg, args)
	}
	// Output that goes into a file (the --detach log, a redirection) is
	// the trainer's as well as baton's: it passes through the redaction
	// that the log segments in the store get, so that no key of baton's
	// environment lands on the disk. A terminal or a pipe (the container
	// log) gets the trainer's output unchanged.
	for _, w := range []*io.Writer{&e.stdout, &e.stderr} {
		if isRegularFile(*w) {
			r := redact.NewWriter(*w, e.environ)
			defer r.Flush()
			*w = r
		}
	}
	log := slog.New(logHandler(cfg.LogFormat, e))
	for _, w := range config.UnknownVariables(e.environ) {
		log.Warn(w)
	}
	if ef != nil {
		log.Info("read the --env-file and deleted it", "env_file", ef.path, "names", ef.added, "already_set", ef.kept)
		if ef.warning != "" {
			log.Warn(ef.warning)
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1)
	defer signal.Stop(sigs)
	code := agent.Run(context.WithoutCancel(ctx), cfg, command, agent.Deps{
		Environ: e.environ, Root: os.DirFS("/"), Stdout: e.stdout, Stderr: e.stderr,
		Logger: log, Signals: sigs, Version: version, Lower: e.lower,
	})
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

func logHandler(format string, e env) slog.Handler {
	return formatLogHandler(e.stderr, format, nil)
}

// isRegularFile reports whether w is an open regular file.
func isRegularFile(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode().IsRegular()
}

// detach starts baton run again in the background, in a session of its own,
// with its output in the log file and its pid in the pid file, and returns.
// Running it again while that run is alive does nothing: Vast.ai runs
// onstart on every start of the instance. e is baton's environment with
// the --env-file's variables, which the background baton gets in its
// environment, not in a file: the file is gone.
func (c *runCmd) detach(e env, cfg config.Config, args []string) error {
	if b, err := os.ReadFile(cfg.PIDFile); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && isBatonRun(pid) {
			fmt.Fprintf(e.stdout, "baton run is already running (pid %d, log %s)\n", pid, cfg.LogFile)
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
	cmd := exec.Command(self, append([]string{"run"}, backgroundArgs(args)...)...)
	cmd.Env = append(slices.Clip(e.environ), "BATON_DETACH=false", "BATON_ENV_FILE=")
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
	fmt.Fprintf(e.stdout, "baton run started in the background (pid %d, log %s)\n", pid, cfg.LogFile)
	return nil
}

// backgroundArgs drops --detach and --env-file from baton's own flags
// (those before "--"): the background copy runs the trainer instead of
// detaching again, and finds the env-file's variables in its environment
// (the file is gone).
func backgroundArgs(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		switch {
		case a == "--detach", a == "-detach", a == "--detach=true", a == "-detach=true":
			continue
		case a == "--env-file", a == "-env-file":
			i++ // and its value
			continue
		case strings.HasPrefix(a, "--env-file="), strings.HasPrefix(a, "-env-file="):
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
