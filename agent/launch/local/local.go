// Package local is the launch provider that starts a host as a process of
// this machine: baton run in DIR/LABEL/, its output in DIR/LABEL/baton.log.
// It makes the whole launch-and-watch loop run, and be tested, on one
// machine, and lets a user try it before renting anything.
package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/batonrun/baton/agent/launch"
)

// Files of a host's directory.
const (
	// LogFile receives baton run's and the trainer's output.
	LogFile = "baton.log"
	// PIDFile holds baton run's process id, which is also its process
	// group's.
	PIDFile = "baton.pid"
	// ExitFile holds its exit status once it ended (while this process
	// waited for it).
	ExitFile = "baton.exit"
)

// Provider starts hosts as local processes.
type Provider struct {
	// Dir holds one directory per host.
	Dir string
	// Binary is the baton binary to start (os.Executable's by default).
	Binary string
	// Environ is the environment the hosts inherit (os.Environ), less
	// its BATON_* variables: a host's settings are its flags.
	Environ []string
}

// New returns the provider of hosts under dir, started from binary ("":
// this process's own executable).
func New(dir, binary string, environ []string) (*Provider, error) {
	if binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("local: finding baton's binary: %w", err)
		}
		binary = exe
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return &Provider{Dir: abs, Binary: binary, Environ: environ}, nil
}

// Name is "local".
func (p *Provider) Name() string { return "local" }

// Offers returns the one offer of this machine, free of charge. It names
// no Machine: each host is a fresh directory, so a failed one is never a
// reason to avoid the next.
func (p *Provider) Offers(context.Context, launch.Request) ([]launch.Offer, error) {
	return []launch.Offer{{Provider: "local", ID: "local", GPU: "local", GPUCount: 0, Where: p.Dir}}, nil
}

// Create starts baton run -- host.Args in Dir/LABEL, in a process group of
// its own, with HOSTNAME set to the label (so that its lease holder names
// it) and baton's directory first on PATH (so that the trainer's baton
// checkpoint commit is this baton).
func (p *Provider) Create(_ context.Context, _ launch.Offer, host launch.Host) (launch.Machine, error) {
	dir := filepath.Join(p.Dir, host.Label)
	if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return launch.Machine{}, fmt.Errorf("local: %w", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return launch.Machine{}, fmt.Errorf("local: host directory: %w", err)
	}
	logf, err := os.OpenFile(filepath.Join(dir, LogFile), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return launch.Machine{}, fmt.Errorf("local: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(p.Binary, append([]string{"run", "--"}, host.Args...)...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = p.environ(host)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return launch.Machine{}, fmt.Errorf("local: starting baton: %w", err)
	}
	pid := cmd.Process.Pid
	if err := os.WriteFile(filepath.Join(dir, PIDFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return launch.Machine{}, fmt.Errorf("local: %w", err)
	}
	go func() { // reap it, and leave its status for Status
		cmd.Wait()
		code := -1
		if cmd.ProcessState != nil {
			code = cmd.ProcessState.ExitCode()
		}
		os.WriteFile(filepath.Join(dir, ExitFile), []byte(strconv.Itoa(code)+"\n"), 0o644)
	}()
	return launch.Machine{Provider: "local", ID: host.Label, Label: host.Label, State: launch.StateRunning}, nil
}

// environ is a host's environment: Environ without BATON_* and HOSTNAME,
// then the host's variables, HOSTNAME and PATH.
func (p *Provider) environ(host launch.Host) []string {
	var env []string
	path := os.Getenv("PATH")
	for _, kv := range p.Environ {
		name, value, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "BATON_"), name == "HOSTNAME", host.Env[name] != "":
		case name == "PATH":
			path = value
		default:
			env = append(env, kv)
		}
	}
	for name, value := range host.Env {
		env = append(env, name+"="+value)
	}
	return append(env, "HOSTNAME="+host.Label, "PATH="+filepath.Dir(p.Binary)+string(os.PathListSeparator)+path)
}

// Find returns the host labelled label, if its directory exists.
func (p *Provider) Find(ctx context.Context, label string) ([]launch.Machine, error) {
	m, err := p.Status(ctx, label)
	if errors.Is(err, launch.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []launch.Machine{m}, nil
}

// Status says whether the host's baton still runs: stopped once it exited
// (or its process is gone), gone when its directory is.
func (p *Provider) Status(_ context.Context, id string) (launch.Machine, error) {
	m := launch.Machine{Provider: "local", ID: id, Label: id}
	dir, err := p.hostDir(id)
	if err != nil {
		return m, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("local host %s: %w", id, launch.ErrNotFound)
	}
	m.State = launch.StateStopped
	if _, err := os.Stat(filepath.Join(dir, ExitFile)); err == nil {
		return m, nil
	}
	pid, err := p.pid(dir)
	if err != nil {
		return m, nil // never started
	}
	if syscall.Kill(pid, 0) == nil {
		m.State = launch.StateRunning
	}
	return m, nil
}

// Stop sends SIGTERM to the host's process group: baton run commits and
// exits, as on a platform's stop.
func (p *Provider) Stop(_ context.Context, id string) error { return p.signal(id, syscall.SIGTERM) }

// Destroy kills the host's process group and removes its directory.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	if err := p.signal(id, syscall.SIGKILL); err != nil && !errors.Is(err, launch.ErrNotFound) {
		return err
	}
	dir, err := p.hostDir(id)
	if err != nil {
		return err
	}
	return os.RemoveAll(dir)
}

func (p *Provider) signal(id string, sig syscall.Signal) error {
	dir, err := p.hostDir(id)
	if err != nil {
		return err
	}
	pid, err := p.pid(dir)
	if err != nil {
		return fmt.Errorf("local host %s: %w", id, launch.ErrNotFound)
	}
	if err := syscall.Kill(-pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("local host %s: %w", id, err)
	}
	return nil
}

// hostDir is the directory of host id, which must be one name.
func (p *Provider) hostDir(id string) (string, error) {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`) {
		return "", fmt.Errorf("local host %q: %w", id, launch.ErrNotFound)
	}
	return filepath.Join(p.Dir, id), nil
}

func (p *Provider) pid(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, PIDFile))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
