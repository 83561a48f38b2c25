package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/batonrun/baton/agent/supervise"
)

// The trainer asks the agent for a commit through a Unix socket whose path
// is in BATON_AGENT_SOCKET: it sends "commit\n" and reads back "ok\n" or
// "error: ...\n" once the commit is done. `baton checkpoint commit` does
// this when run inside `baton run` (see RequestCommit).

// listen serves the control socket until ctx ends and returns its path.
func (a *agent) listen(ctx context.Context, trigger chan<- chan error) (string, error) {
	path := filepath.Join(os.TempDir(), fmt.Sprintf("baton-%d.sock", os.Getpid()))
	os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("control socket: %w", err)
	}
	go func() {
		<-ctx.Done()
		l.Close()
		os.Remove(path)
	}()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go a.serve(ctx, conn, trigger)
		}
	}()
	return path, nil
}

func (a *agent) serve(ctx context.Context, conn net.Conn, trigger chan<- chan error) {
	defer conn.Close()
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "commit" {
		fmt.Fprintf(conn, "error: unknown request %q\n", strings.TrimSpace(line))
		return
	}
	reply := make(chan error, 1)
	select {
	case trigger <- reply:
	case <-ctx.Done():
		fmt.Fprintln(conn, "error: the run is ending")
		return
	}
	if err := <-reply; err != nil {
		fmt.Fprintf(conn, "error: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	fmt.Fprintln(conn, "ok")
}

// handleSignals forwards SIGTERM and SIGINT to the trainer's group and
// turns SIGUSR1 into a commit.
func (a *agent) handleSignals(ctx context.Context, sup *supervise.Supervisor, trigger chan<- chan error) {
	for {
		select {
		case <-ctx.Done():
			return
		case sig, ok := <-a.deps.Signals:
			if !ok {
				return
			}
			switch sig {
			case syscall.SIGUSR1:
				go func() {
					reply := make(chan error, 1)
					select {
					case trigger <- reply:
						<-reply
					case <-ctx.Done():
					}
				}()
			case syscall.SIGTERM, syscall.SIGINT:
				a.log.Info("stop requested: forwarding to the trainer and committing at once", "signal", sig.String())
				sup.Stop(sig.(syscall.Signal))
			}
		}
	}
}

// RequestCommit asks the agent listening on socket to commit now and waits
// for the commit to finish.
func RequestCommit(ctx context.Context, socket string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return fmt.Errorf("asking baton run for a commit: %w", err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	} else {
		conn.SetDeadline(time.Now().Add(time.Hour))
	}
	if _, err := fmt.Fprintln(conn, "commit"); err != nil {
		return fmt.Errorf("asking baton run for a commit: %w", err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("asking baton run for a commit: %w", err)
	}
	if line = strings.TrimSpace(line); line != "ok" {
		return errors.New("baton run: " + strings.TrimPrefix(line, "error: "))
	}
	return nil
}
