package platform

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAction(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Action
		wantErr bool
	}{
		{"none", ActionNone, false},
		{"stop", ActionStop, false},
		{"terminate", ActionTerminate, false},
		{" Stop ", ActionStop, false},
		{"TERMINATE", ActionTerminate, false},
		{"", ActionNone, false},
		{"destroy", "", true},
		{"stop,terminate", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAction(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseAction(%q) = %q, want an error", tt.in, got)
				}
				if !strings.Contains(err.Error(), `"`+tt.in+`"`) {
					t.Errorf("error %q does not name the value %q", err, tt.in)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAction(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// fakeController records the calls made to it.
type fakeController struct {
	calls []string
	err   error
}

func (f *fakeController) Stop(context.Context) error {
	f.calls = append(f.calls, "stop")
	return f.err
}

func (f *fakeController) Terminate(context.Context) error {
	f.calls = append(f.calls, "terminate")
	return f.err
}

func TestActionDo(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	tests := []struct {
		name      string
		action    Action
		nilCtl    bool
		ctlErr    error
		wantCalls []string
		wantErr   string
	}{
		{name: "none calls nothing", action: ActionNone},
		{name: "none needs no controller", action: ActionNone, nilCtl: true},
		{name: "stop", action: ActionStop, wantCalls: []string{"stop"}},
		{name: "terminate", action: ActionTerminate, wantCalls: []string{"terminate"}},
		{name: "failure is returned", action: ActionStop, ctlErr: boom, wantCalls: []string{"stop"}, wantErr: "boom"},
		{name: "stop without controller", action: ActionStop, nilCtl: true, wantErr: "no platform controller"},
		{name: "invalid action", action: "reboot", wantErr: `"reboot"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeController{err: tt.ctlErr}
			var c Controller = f
			if tt.nilCtl {
				c = nil
			}
			err := tt.action.Do(t.Context(), c)
			if tt.wantErr == "" && err != nil {
				t.Fatalf("Do: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("Do error = %v, want it to contain %q", err, tt.wantErr)
			}
			if !reflect.DeepEqual(f.calls, tt.wantCalls) {
				t.Errorf("calls = %v, want %v", f.calls, tt.wantCalls)
			}
		})
	}
}
