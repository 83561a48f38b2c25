package platform

import (
	"context"
	"fmt"
	"strings"
)

// Action is what baton does to its own instance when the run ends: nothing, stop it
// (billing for compute ends, the disk is kept and billed) or terminate it (everything is
// deleted, billing ends).
type Action string

// The exit actions.
const (
	ActionNone      Action = "none"
	ActionStop      Action = "stop"
	ActionTerminate Action = "terminate"
)

// ParseAction parses an exit action ("none", "stop" or "terminate", in any case; empty means
// none). An unknown value is an error that names it.
func ParseAction(s string) (Action, error) {
	switch a := Action(strings.ToLower(strings.TrimSpace(s))); a {
	case "":
		return ActionNone, nil
	case ActionNone, ActionStop, ActionTerminate:
		return a, nil
	}
	return "", fmt.Errorf("unknown exit action %q: want none, stop or terminate", s)
}

// String returns the action's name.
func (a Action) String() string { return string(a) }

// Do carries the action out through c: nothing for none, c.Stop for stop, c.Terminate for
// terminate. c may be nil for none. An invalid action is an error that names it.
func (a Action) Do(ctx context.Context, c Controller) error {
	switch a {
	case ActionNone, "":
		return nil
	case ActionStop, ActionTerminate:
		if c == nil {
			return fmt.Errorf("exit action %s: no platform controller", a)
		}
		if a == ActionStop {
			return c.Stop(ctx)
		}
		return c.Terminate(ctx)
	}
	return fmt.Errorf("unknown exit action %q: want none, stop or terminate", string(a))
}
