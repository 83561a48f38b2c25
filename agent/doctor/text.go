package doctor

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// ANSI colours of the statuses on a terminal.
const (
	colorOK    = "\x1b[32m"
	colorWarn  = "\x1b[33m"
	colorFail  = "\x1b[31m"
	colorReset = "\x1b[0m"
)

// WriteText writes the report for a person: a line per check (its name, its
// status and its reason, aligned), the hint under each warning or failure,
// and a closing line that says whether anything required is broken. color
// adds ANSI colours to the statuses; use it only on a terminal.
func (r Report) WriteText(w io.Writer, color bool) error {
	bw := bufio.NewWriter(w)
	width := 0
	for _, c := range r.Checks {
		width = max(width, len(label(c.Name)))
	}
	fmt.Fprintf(bw, "baton doctor (baton %s)\n\n", r.Version)
	indent := strings.Repeat(" ", width+2+4+2)
	for _, c := range r.Checks {
		fmt.Fprintf(bw, "%-*s  %s  %s\n", width, label(c.Name), paint(c.Status, color), c.Reason)
		if c.Hint != "" && c.Status != OK {
			fmt.Fprintf(bw, "%s-> %s\n", indent, c.Hint)
		}
	}
	fmt.Fprintf(bw, "\n%s\n", r.summary())
	return bw.Flush()
}

// summary is the closing line of WriteText.
func (r Report) summary() string {
	var warns, fails int
	var required, other []string
	for _, c := range r.Checks {
		switch {
		case c.Status == Warn:
			warns++
		case c.Status == Fail && c.Required:
			fails++
			required = append(required, c.Name)
		case c.Status == Fail:
			fails++
			other = append(other, c.Name)
		}
	}
	counts := plural(warns, "warning") + ", " + plural(fails, "failure")
	if len(required) > 0 {
		return fmt.Sprintf("%s: baton cannot run here as configured (required: %s); exit status 1", counts, strings.Join(required, ", "))
	}
	if warns+fails == 0 {
		return "everything baton needs is in place; nothing required is broken"
	}
	s := counts + "; nothing required is broken"
	if len(other) > 0 {
		s += " (not required: " + strings.Join(other, ", ") + ")"
	}
	return s
}

// label is how a check's name is printed: "gpu.0" as "gpu 0".
func label(name string) string { return strings.ReplaceAll(name, ".", " ") }

// paint writes a status four columns wide, in colour if asked.
func paint(s Status, color bool) string {
	text := fmt.Sprintf("%-4s", s)
	if !color {
		return text
	}
	code := colorOK
	switch s {
	case Warn:
		code = colorWarn
	case Fail:
		code = colorFail
	}
	return code + text + colorReset
}

// WriteJSON writes the report as one indented JSON object, the format that
// docs/doctor.md documents.
func (r Report) WriteJSON(w io.Writer) error {
	if r.Checks == nil {
		r.Checks = []Check{}
	}
	if r.Disks == nil {
		r.Disks = []DiskFacts{}
	}
	if r.Config.Settings == nil {
		r.Config.Settings = []SettingFacts{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
