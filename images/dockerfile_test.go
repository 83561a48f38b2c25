package images

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/batonrun/baton/internal/imagetest"
)

// dockerfiles returns the repository's Dockerfiles, relative to its root:
// the root one and one per directory of images/.
func dockerfiles(t *testing.T, repo string) []string {
	t.Helper()
	found, err := filepath.Glob(filepath.Join(repo, "images", "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"Dockerfile"}
	for _, f := range found {
		rel, _ := filepath.Rel(repo, f)
		files = append(files, rel)
	}
	if len(files) < 3 {
		t.Fatalf("found %q, want the root Dockerfile, images/pytorch and images/slim", files)
	}
	return files
}

// TestDockerfilesParse runs every Dockerfile through BuildKit's own parser,
// instruction parser and linter (the code behind `docker build` and
// `docker build --check`) and checks what every image here promises: the base
// image is a build argument with a default, and COPY --from names a stage.
func TestDockerfilesParse(t *testing.T) {
	repo := imagetest.RepoRoot(t)
	for _, name := range dockerfiles(t, repo) {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(repo, name))
			if err != nil {
				t.Fatal(err)
			}
			if problems := dockerfileProblems(data); len(problems) > 0 {
				t.Errorf("%s:\n%s", name, strings.Join(problems, "\n"))
			}
		})
	}
}

// TestImageEntrypoints checks the command lines of the ready images: baton as
// the exec-form ENTRYPOINT, so the container's command is the trainer and
// signals reach baton, and an exec-form CMD where there is one.
func TestImageEntrypoints(t *testing.T) {
	repo := imagetest.RepoRoot(t)
	for _, name := range dockerfiles(t, repo)[1:] {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join(repo, name))
			if err != nil {
				t.Fatal(err)
			}
			stages, _ := parseDockerfile(t, data)
			final := stages[len(stages)-1]
			var ep *instructions.EntrypointCommand
			var cmd *instructions.CmdCommand
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.EntrypointCommand:
					ep = c
				case *instructions.CmdCommand:
					cmd = c
				}
			}
			if ep == nil || ep.PrependShell || !slices.Equal(ep.CmdLine, entrypoint) {
				t.Errorf("ENTRYPOINT: want %q in exec form", entrypoint)
			}
			if cmd != nil && cmd.PrependShell {
				t.Errorf("CMD %q: want exec form (a JSON list)", cmd.CmdLine)
			}
		})
	}
}

// TestParseCatchesMistakes makes sure the checks above can fail: each
// Dockerfile here breaks one rule.
func TestParseCatchesMistakes(t *testing.T) {
	for _, tc := range []struct{ name, dockerfile, want string }{
		{"unknown instruction", "FROM scratch\nCOPPY a b\n", "unknown instruction"},
		{"bad flag", "FROM scratch\nCOPY --frm=x a b\n", "unknown flag"},
		{"lint: casing", "ARG B=x\nFROM ${B} as build\n", "FromAsCasing"},
		{"no FROM", "RUN true\n", "no build stage"},
		{"lint: stage name casing", "ARG B=x\nFROM ${B} AS Build\n", "StageNameCasing"},
		{"base not an argument", "FROM ubuntu:22.04\n", "must be a build argument"},
		{"base argument without default", "ARG B\nFROM ${B}\n", "needs a default"},
		{"copy from no stage", "ARG B=x\nFROM ${B}\nCOPY --from=baton /baton /baton\n", "no earlier stage"},
		{"empty continuation", "ARG B=x\nFROM ${B}\nRUN true \\\n\n  && true\n", "Empty continuation"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			problems := dockerfileProblems([]byte(tc.dockerfile))
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("problems %q, want one mentioning %q", problems, tc.want)
			}
		})
	}
}

// parseDockerfile parses data and fails t on any error, parser warning or
// lint warning.
func parseDockerfile(t *testing.T, data []byte) ([]instructions.Stage, []instructions.ArgCommand) {
	t.Helper()
	if problems := dockerfileProblems(data); len(problems) > 0 {
		t.Fatalf("BuildKit finds:\n%s", strings.Join(problems, "\n"))
	}
	res, _ := parser.Parse(bytes.NewReader(data))
	stages, metaArgs, _ := instructions.Parse(res.AST, nil)
	return stages, metaArgs
}

// dockerfileProblems returns what BuildKit's parser and linter say of data:
// errors, parser warnings and lint warnings, one line each.
func dockerfileProblems(data []byte) []string {
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return []string{"parse: " + err.Error()}
	}
	var problems []string
	for _, w := range res.Warnings {
		problems = append(problems, fmt.Sprintf("line %d: %s", line(w.Location), w.Short))
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		problems = append(problems, fmt.Sprintf("line %d: %s: %s", firstLine(loc), rule, msg))
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		return append(problems, "instructions: "+err.Error())
	}
	return append(problems, ruleProblems(stages, metaArgs)...)
}

// ruleProblems checks the rules of this repository's Dockerfiles: every base
// image is a build argument (FROM ${ARG}) with a default, or an earlier
// stage, and COPY --from names an earlier stage.
func ruleProblems(stages []instructions.Stage, metaArgs []instructions.ArgCommand) []string {
	var problems []string
	defaults := map[string]string{}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			if kv.Value != nil {
				defaults[kv.Key] = *kv.Value
			}
		}
	}
	var names []string
	for _, s := range stages {
		if !slices.Contains(names, s.BaseName) {
			arg, ok := baseArg(s.BaseName)
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("line %d: FROM %s: the base image must be a build argument (FROM ${ARG}) so that it can be built on a local base", firstLine(s.Location), s.BaseName))
			case defaults[arg] == "":
				problems = append(problems, fmt.Sprintf("line %d: FROM %s: ARG %s needs a default before the first FROM", firstLine(s.Location), s.BaseName, arg))
			}
		}
		for _, c := range s.Commands {
			if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && !slices.Contains(names, cp.From) {
				problems = append(problems, fmt.Sprintf("line %d: COPY --from=%s: no earlier stage of that name", firstLine(cp.Location()), cp.From))
			}
		}
		if s.Name != "" {
			names = append(names, s.Name)
		}
	}
	return problems
}

// baseArg returns NAME for a FROM argument "${NAME}" or "$NAME".
func baseArg(from string) (string, bool) {
	m := regexp.MustCompile(`^\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))$`).FindStringSubmatch(from)
	if m == nil {
		return "", false
	}
	return m[1] + m[2], true
}

func line(r *parser.Range) int {
	if r == nil {
		return 0
	}
	return r.Start.Line
}

func firstLine(rs []parser.Range) int {
	if len(rs) == 0 {
		return 0
	}
	return rs[0].Start.Line
}
