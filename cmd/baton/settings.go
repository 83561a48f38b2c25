package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storeurl"
)

// errHelpShown says that a command printed its usage for -h: exit 0.
var errHelpShown = errors.New("help shown")

// settings reads the settings of the command called name (as listed in
// config.Commands) into dst, a pointer to that command's settings struct,
// the way every command reads them (flags, BATON_* variables, the file of
// --config, defaults), checks them, and returns the operands. For -h it
// prints the command's usage and returns errHelpShown; every problem is a
// usage error that names its key.
func (e env) settings(name string, dst any, args []string) ([]string, error) {
	operands, err := config.LoadInto(dst, args, e.getenv, os.ReadFile)
	if errors.Is(err, config.ErrHelp) {
		synopsis := name
		if c, ok := config.LookupCommand(name); ok {
			synopsis = c.Synopsis
		}
		fmt.Fprintf(e.stdout, "Usage: baton %s\n\nFlags (settings: docs/config.md):\n%s", synopsis, config.UsageOf(dst))
		return nil, errHelpShown
	}
	if err == nil {
		err = config.Validate(dst)
	}
	if err != nil {
		return nil, usageError{err}
	}
	if name != "run" { // baton run logs them in its own format
		for _, w := range config.UnknownVariables(e.environ) {
			fmt.Fprintf(e.stderr, "baton %s: warning: %s\n", name, w)
		}
	}
	return operands, nil
}

// wantOperands returns a usage error unless there are min to max operands,
// named by what.
func wantOperands(operands []string, min, max int, what string) error {
	switch n := len(operands); {
	case n >= min && n <= max:
		return nil
	case max == 0:
		return usagef("takes no arguments, got %q", operands)
	default:
		return usagef("want %s, got %d arguments", what, n)
	}
}

// openStore opens the store named by raw, mapping a bad URL to a usage
// error.
func (e env) openStore(ctx context.Context, raw, driver string, workers int) (storage.Store, error) {
	s, err := storeurl.Open(ctx, raw, storeurl.Options{Driver: driver, Getenv: e.getenv, MaxConns: workers})
	if errors.Is(err, storeurl.ErrBadURL) {
		return nil, usageError{err}
	}
	return s, err
}
