package docs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/batonrun/baton/agent/config"
)

// docFiles are the Markdown files whose baton command lines the tests check,
// relative to the repository root (the test runs in docs/).
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "examples/README.md", "images/README.md"}
	pages, err := filepath.Glob("*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, p := range pages {
		files = append(files, "docs/"+p)
	}
	return files
}

// example is one baton command line of the docs.
type example struct {
	file string
	line int
	// text is the command line as written: from its baton word to the end
	// of its simple command.
	text string
	// args are its words after the baton word, quotes removed.
	args []string
	// env are the NAME=VALUE assignments in effect: those the file's shell
	// blocks exported before it, then the command's own prefix.
	env []string
	// shell says that it is a command of a shell code block (sh, bash,
	// shell, console), written to be typed as it is; not inline code, an
	// untyped block (synopses, output) or a command quoted inside another.
	shell bool
}

func (e example) String() string { return fmt.Sprintf("%s:%d: %s", e.file, e.line, e.text) }

// assignment is one NAME=VALUE of a code block or inline code: exported, in
// front of a baton command, or a line of its own (a template's variables).
type assignment struct {
	file string
	line int
	kv   string
}

// shellLangs are the info strings of the fenced blocks whose lines are
// commands; an untyped block's lines are read too, but only checked.
var shellLangs = map[string]bool{"sh": true, "bash": true, "shell": true, "console": true}

var fence = regexp.MustCompile("^(\\s*)(```+|~~~+)\\s*([^`\\s]*)")

// extract returns the baton command lines of one Markdown file: those of
// fenced shell and untyped blocks (a backslash continues a line; in a
// console block only the lines after a "$ " prompt), and those of inline
// code, where a code span may wrap across lines. It also returns every
// NAME=VALUE assignment it saw.
func extract(file, markdown string) ([]example, []assignment) {
	var out []example
	var assigns []assignment
	var exported []string
	lines := strings.Split(markdown, "\n")
	var para []string // the lines of the paragraph being read, outside blocks
	paraStart := 0
	flush := func() {
		if len(para) > 0 {
			exs, as := inlineExamples(file, paraStart, strings.Join(para, "\n"))
			out, assigns = append(out, exs...), append(assigns, as...)
		}
		para = nil
	}
	for i := 0; i < len(lines); i++ {
		m := fence.FindStringSubmatch(lines[i])
		if m == nil {
			if strings.TrimSpace(lines[i]) == "" {
				flush()
				continue
			}
			if len(para) == 0 {
				paraStart = i + 1
			}
			para = append(para, lines[i])
			continue
		}
		flush()
		lang, marker := strings.ToLower(m[3]), m[2]
		read := lang == "" || shellLangs[lang]
		for i++; i < len(lines); i++ {
			if strings.HasPrefix(strings.TrimSpace(lines[i]), marker) {
				break
			}
			if !read {
				continue
			}
			start, text := i+1, lines[i]
			for strings.HasSuffix(text, "\\") && i+1 < len(lines) {
				i++
				text = strings.TrimSuffix(text, "\\") + " " + strings.TrimSpace(lines[i])
			}
			text = strings.TrimSpace(text)
			if lang == "console" {
				if !strings.HasPrefix(text, "$ ") {
					continue // output
				}
				text = text[2:]
			}
			for _, c := range commands(text) {
				for _, kv := range c.assign {
					assigns = append(assigns, assignment{file, start, kv})
				}
				if c.export && shellLangs[lang] {
					exported = append(exported, c.assign...)
				}
				if c.args == nil {
					continue
				}
				env := append(append([]string(nil), exported...), c.assign...)
				out = append(out, example{file: file, line: start, text: c.text, args: c.args, env: env,
					shell: shellLangs[lang] && !c.nested})
			}
		}
	}
	flush()
	return out, assigns
}

// inlineExamples returns the baton command lines of the code spans of a
// paragraph (or a table) whose first line is line.
func inlineExamples(file string, line int, para string) ([]example, []assignment) {
	var out []example
	var assigns []assignment
	for i := 0; i < len(para); {
		if para[i] != '`' {
			i++
			continue
		}
		n := 0
		for i+n < len(para) && para[i+n] == '`' {
			n++
		}
		ticks := para[i : i+n]
		end := -1
		for j := i + n; j < len(para); {
			k := strings.Index(para[j:], ticks)
			if k < 0 {
				break
			}
			k += j
			if k+n == len(para) || para[k+n] != '`' {
				end = k
				break
			}
			for j = k; j < len(para) && para[j] == '`'; j++ {
			}
		}
		if end < 0 {
			i += n
			continue
		}
		at := line + strings.Count(para[:i], "\n")
		// A table writes | in code as \|.
		code := strings.ReplaceAll(strings.ReplaceAll(para[i+n:end], "\n", " "), `\|`, "|")
		for _, c := range commands(strings.TrimSpace(code)) {
			for _, kv := range c.assign {
				assigns = append(assigns, assignment{file, at, kv})
			}
			if c.args != nil {
				out = append(out, example{file: file, line: at, text: c.text, args: c.args, env: c.assign})
			}
		}
		i = end + n
	}
	return out, assigns
}

// shellCommand is one simple command of a line, as commands reads it.
type shellCommand struct {
	// assign are its NAME=VALUE words: those before the command word, or
	// all its words after export.
	assign []string
	export bool
	// args are the words after its baton word; nil when it is no baton
	// command.
	args []string
	// text is the command as written, from the baton word on.
	text string
	// nested says that it was quoted inside another word (bash -c '...',
	// BATON_COMMIT_CMD="baton checkpoint commit").
	nested bool
}

// wrappers are words that run the command after them.
var wrappers = map[string]bool{"exec": true, "sudo": true, "env": true, "nohup": true, "time": true}

var assignmentWord = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// commands splits a shell line into its simple commands (at &&, ||, ;, | and
// &) and returns those that run baton or assign variables, then those of the
// strings quoted in it, each read as a line of its own. A command whose
// words hold an unquoted ( or ) is not one a shell would run as written:
// prose or program output ("baton doctor (baton v0.4.0)"), left out. So is
// a baton word followed by a word that ends with a colon: an error message
// ("baton run: --store: required").
func commands(line string) []shellCommand {
	var out, nested []shellCommand
	toks := lex(alternatives(line))
	for len(toks) > 0 {
		n := 0
		for n < len(toks) && (toks[n].op == "" || toks[n].op == "(" || toks[n].op == ")") {
			n++
		}
		simple := toks[:n]
		if n < len(toks) {
			n++ // the operator
		}
		toks = toks[n:]
		prose := false
		var words []token
		for _, t := range simple {
			if t.op != "" {
				prose = true
				continue
			}
			if runsQuoted(words, t) {
				for _, q := range t.quoted {
					for _, c := range commands(q) {
						c.nested = true
						nested = append(nested, c)
					}
				}
			}
			words = append(words, t)
		}
		if prose || len(words) == 0 {
			continue
		}
		var c shellCommand
		if words[0].text == "export" {
			c.export = true
			for _, w := range words[1:] {
				if assignmentWord.MatchString(w.text) {
					c.assign = append(c.assign, w.text)
				}
			}
			out = append(out, c)
			continue
		}
		for len(words) > 0 && assignmentWord.MatchString(words[0].text) {
			c.assign = append(c.assign, words[0].text)
			words = words[1:]
		}
		for len(words) > 0 && wrappers[words[0].text] {
			words = words[1:]
		}
		if len(words) >= 2 && isBaton(words[0].text) && !strings.HasSuffix(words[1].text, ":") {
			c.args = []string{}
			for _, w := range words[1:] {
				c.args = append(c.args, w.text)
			}
			c.text = strings.TrimSpace(words[0].raw + " " + strings.Join(raws(words[1:]), " "))
		} else if len(words) > 0 {
			c.assign = nil // a prefix of another program (BATON_TELEMETRY_FIGURES=1 go test): not baton's
		}
		if c.args != nil || c.assign != nil {
			out = append(out, c)
		}
	}
	return append(out, nested...)
}

// runsQuoted reports whether the quoted parts of word t, after words, are a
// command line: the argument of sh -c, a variable's value (BATON_COMMIT_CMD=
// "baton checkpoint commit"), the value of a flag named *-cmd or *-command
// (vastai's --onstart-cmd); not any other quoted argument (git tag -m
// "baton v1").
func runsQuoted(words []token, t token) bool {
	if assignmentWord.MatchString(t.text) {
		return true
	}
	if name, _, ok := strings.Cut(t.text, "="); ok && strings.HasPrefix(name, "-") {
		return strings.HasSuffix(name, "-cmd") || strings.HasSuffix(name, "-command")
	}
	if len(words) == 0 {
		return false
	}
	prev := words[len(words)-1].text
	return prev == "-c" || strings.HasPrefix(prev, "-") && (strings.HasSuffix(prev, "-cmd") || strings.HasSuffix(prev, "-command"))
}

// isBaton reports whether word names baton's binary: baton, bin/baton,
// /usr/local/bin/baton (but not the URL https://HOST/baton).
func isBaton(word string) bool {
	return word == "baton" || strings.HasSuffix(word, "/baton") && !strings.Contains(word, "://")
}

// alternatives turns the | of a synopsis's brackets ([--seq N|--all]) into a
// space, so that it does not read as a pipe.
func alternatives(line string) string {
	depth := 0
	b := []byte(line)
	for i, c := range b {
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case c == '|' && depth > 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// token is a word of a shell line, or an operator.
type token struct {
	text string // the word, quotes and escapes removed
	raw  string // the word as written
	op   string // "&&", "||", ";", "|", "&", "(" or ")"; empty for a word
	// quoted are the contents of its quoted parts.
	quoted []string
}

func raws(ts []token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.raw
	}
	return out
}

// lex splits a shell line into words and operators: quotes ('...', "..."
// with its backslash escapes) and backslashes as a shell reads them, an
// unquoted # at the start of a word begins a comment. An unterminated quote
// runs to the end of the line. No expansion.
func lex(s string) []token {
	var toks []token
	var cur, raw strings.Builder
	var quoted []string
	inWord := false
	flush := func() {
		if inWord {
			toks = append(toks, token{text: cur.String(), raw: raw.String(), quoted: quoted})
		}
		cur.Reset()
		raw.Reset()
		quoted, inWord = nil, false
	}
	rs := []rune(s)
	for i := 0; i < len(rs); i++ {
		r := rs[i]
		switch {
		case r == '\'' || r == '"':
			inWord = true
			var q strings.Builder
			j := i + 1
			for ; j < len(rs) && rs[j] != r; j++ {
				if r == '"' && rs[j] == '\\' && j+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[j+1]) {
					j++
				}
				q.WriteRune(rs[j])
			}
			cur.WriteString(q.String())
			raw.WriteString(string(rs[i:min(j+1, len(rs))]))
			quoted = append(quoted, q.String())
			i = j
		case r == '\\' && i+1 < len(rs):
			inWord = true
			raw.WriteString(string(rs[i : i+2]))
			i++
			cur.WriteRune(rs[i])
		case unicode.IsSpace(r):
			flush()
		case r == '#' && !inWord:
			flush()
			return toks
		case strings.ContainsRune("&|;()", r):
			flush()
			op := string(r)
			if (r == '&' || r == '|') && i+1 < len(rs) && rs[i+1] == r {
				op += string(r)
				i++
			}
			toks = append(toks, token{op: op})
		default:
			inWord = true
			cur.WriteRune(r)
			raw.WriteRune(r)
		}
	}
	flush()
	return toks
}

// placeholder reports whether an argument is a synopsis's, not one to type:
// brackets, or an ellipsis.
func placeholder(arg string) bool {
	return strings.ContainsAny(arg, "[]…") || strings.Contains(arg, "...")
}

// topLevel are baton's commands: the first word of each command of
// config.Commands, and the two that read no settings.
func topLevel() map[string]bool {
	names := map[string]bool{"version": true, "help": true}
	for _, c := range config.Commands() {
		first, _, _ := strings.Cut(c.Name, " ")
		names[first] = true
	}
	return names
}

// lookup returns the command of config.Commands that args (after baton)
// run, and the arguments after its name. ok is false, with a nil error, for
// a line that names no single command: baton version or help, or a bare
// baton checkpoint.
func lookup(args []string) (c config.Command, rest []string, ok bool, err error) {
	name := args[0]
	switch {
	case name == "version" || name == "--version" || name == "-v":
		for _, a := range args[1:] {
			if !placeholder(a) {
				return c, nil, false, fmt.Errorf("baton version takes no arguments, got %q", a)
			}
		}
		return c, nil, false, nil
	case name == "help" || name == "-h" || name == "--help":
		return c, nil, false, nil
	case !topLevel()[name]:
		return c, nil, false, fmt.Errorf("baton has no command %q", name)
	case name == "checkpoint":
		if len(args) == 1 || placeholder(args[1]) || args[1] == "COMMAND" || args[1] == "-h" || args[1] == "--help" ||
			args[1] == "help" {
			return c, nil, false, nil
		}
		name += " " + args[1]
		args = args[1:]
	}
	c, found := config.LookupCommand(name)
	if !found {
		return c, nil, false, fmt.Errorf("baton has no command %q", name)
	}
	return c, args[1:], true, nil
}

// checkExample returns what is wrong with ex: a command, a checkpoint
// command or a flag that baton does not have, a BATON_* variable that no
// command reads, or, for a complete command of a shell block, a value that
// does not read the way baton reads it (config.LoadInto).
func checkExample(ex example) error {
	c, rest, ok, err := lookup(ex.args)
	if err != nil || !ok {
		return err
	}
	byFlag := map[string]config.Setting{}
	for _, s := range config.SettingsOf(c.Settings()) {
		byFlag[s.Flag] = s
	}
	// baton run and doctor end their flags at the trainer's command.
	endsAtOperand := strings.Contains(c.Synopsis, "CMD")
	var words []string
	for _, a := range rest {
		if placeholder(a) && strings.Trim(a, "[]|.…") == "" {
			continue // [, ], ... alone
		}
		for _, w := range strings.Split(strings.Trim(a, "[]"), "|") {
			if w = strings.Trim(w, "[]"); w != "" {
				words = append(words, w)
			}
		}
	}
walk:
	for i := 0; i < len(words); i++ {
		w := words[i]
		switch {
		case w == "--":
			break walk
		case len(w) > 1 && w[0] == '-':
			name, _, hasValue := strings.Cut(strings.TrimPrefix(w[1:], "-"), "=")
			if name == "h" || name == "help" {
				continue
			}
			s, known := byFlag[name]
			if !known {
				return fmt.Errorf("baton %s has no flag %s", c.Name, w)
			}
			if !hasValue && s.Type != "boolean" {
				i++ // its value
			}
		case endsAtOperand:
			break walk
		}
	}
	var problems []string
	if ex.shell && !placeholders(ex.args) {
		_, err := config.LoadInto(c.Settings(), rest, envLookup(ex.env), func(string) ([]byte, error) { return nil, nil })
		if err != nil && !errors.Is(err, config.ErrHelp) {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// placeholders reports whether any of args is a synopsis's placeholder.
func placeholders(args []string) bool {
	for _, a := range args {
		if placeholder(a) {
			return true
		}
	}
	return false
}

// envLookup is a getenv of NAME=VALUE pairs; a later one wins.
func envLookup(env []string) func(string) string {
	return func(name string) string {
		v := ""
		for _, kv := range env {
			if k, val, _ := strings.Cut(kv, "="); k == name {
				v = val
			}
		}
		return v
	}
}

// notBaton are the BATON_* variables the docs set that are not baton's, and
// whose they are.
var notBaton = map[string]string{
	"BATON_MEASURE_SPACE": "a switch of checkpoint's TestRestoreSpace",
}

// checkAssignments returns a problem for each BATON_* variable of assigns
// that no command reads (config.UnknownVariables says which).
func checkAssignments(assigns []assignment) []string {
	var out []string
	for _, a := range assigns {
		if name, _, _ := strings.Cut(a.kv, "="); notBaton[name] != "" {
			continue
		}
		for _, w := range config.UnknownVariables([]string{a.kv}) {
			out = append(out, fmt.Sprintf("%s:%d: %s", a.file, a.line, w))
		}
	}
	return out
}

// readDocs returns the examples and assignments of every file of docFiles.
func readDocs(t *testing.T) ([]example, []assignment) {
	t.Helper()
	var exs []example
	var assigns []assignment
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join("..", f))
		if err != nil {
			t.Fatal(err)
		}
		e, a := extract(f, string(b))
		exs, assigns = append(exs, e...), append(assigns, a...)
	}
	return exs, assigns
}

// TestDocCommandsParse checks every baton command line of the docs: the
// command and each flag exist (agent/config is the truth), the complete
// commands of shell blocks read as baton reads them, and each BATON_*
// variable they set is one a command reads.
func TestDocCommandsParse(t *testing.T) {
	exs, assigns := readDocs(t)
	complete := 0
	for _, ex := range exs {
		if err := checkExample(ex); err != nil {
			t.Errorf("%s\n\t%v", ex, err)
		}
		if ex.shell && !placeholders(ex.args) {
			complete++
		}
	}
	for _, p := range checkAssignments(assigns) {
		t.Error(p)
	}
	if len(exs) < 100 {
		t.Errorf("found %d baton command lines in the docs, want more than 100: is the extractor broken?", len(exs))
	}
	t.Logf("%d baton command lines checked (%d complete commands of shell blocks also read by config.LoadInto), %d assignments",
		len(exs), complete, len(assigns))
}

// TestExtract reads one page with every form of example.
func TestExtract(t *testing.T) {
	page := "# Page\n\n" +
		"Run `baton checkpoint ls` or `bin/baton pull\nSRC DIR` (wrapped); not `baton run: --store: required`,\n" +
		"nor `baton run is already running (pid N)` or `baton`, nor `docker build -t baton .`.\n\n" +
		"| a | `baton checkpoint verify [--seq N\\|--all]` |\n\n" +
		"```sh\n" +
		"export BATON_STORE=s3://b/p BATON_RUN_ID=r   # a comment: baton pull x y\n" +
		"baton checkpoint restore --seq 2 \\\n  /workspace/ckpt\n" +
		"BATON_COMMIT_CMD=\"$PWD/bin/baton checkpoint commit\" bin/baton run -- python3 t.py && echo done\n" +
		"bash -c 'curl https://HOST/baton && exec baton run -- python x.py'\n" +
		"```\n\n" +
		"```\nbaton doctor (baton v0.4.0)\nbaton checkpoint gc [--keep K]\nBATON_PART_SIZE=32MiB\ngit tag -m \"baton v1\" v1\n```\n\n" +
		"```python\nbaton run -- x\n```\n\n" +
		"```console\n$ baton version\nbaton v1 (commit x)\n```\n"
	exs, assigns := extract("p.md", page)
	type got struct {
		line  int
		args  string
		shell bool
		env   string
	}
	want := []got{
		{3, "checkpoint ls", false, ""},
		{3, "pull SRC DIR", false, ""},
		{7, "checkpoint verify [--seq N --all]", false, ""},
		{11, "checkpoint restore --seq 2 /workspace/ckpt", true, "BATON_STORE=s3://b/p BATON_RUN_ID=r"},
		{13, "run -- python3 t.py", true, "BATON_STORE=s3://b/p BATON_RUN_ID=r BATON_COMMIT_CMD=$PWD/bin/baton checkpoint commit"},
		{13, "checkpoint commit", false, "BATON_STORE=s3://b/p BATON_RUN_ID=r"},
		{14, "run -- python x.py", false, "BATON_STORE=s3://b/p BATON_RUN_ID=r"},
		{19, "checkpoint gc [--keep K]", false, "BATON_STORE=s3://b/p BATON_RUN_ID=r"},
		{29, "version", true, "BATON_STORE=s3://b/p BATON_RUN_ID=r"},
	}
	var have []got
	for _, e := range exs {
		have = append(have, got{e.line, strings.Join(e.args, " "), e.shell, strings.Join(e.env, " ")})
	}
	if fmt.Sprint(have) != fmt.Sprint(want) {
		t.Errorf("extract:\n got %v\nwant %v", have, want)
	}
	var kvs []string
	for _, a := range assigns {
		kvs = append(kvs, fmt.Sprintf("%d:%s", a.line, a.kv))
	}
	if w := "[10:BATON_STORE=s3://b/p 10:BATON_RUN_ID=r 13:BATON_COMMIT_CMD=$PWD/bin/baton checkpoint commit 20:BATON_PART_SIZE=32MiB]"; fmt.Sprint(kvs) != w {
		t.Errorf("assignments:\n got %v\nwant %s", kvs, w)
	}
}

// TestCheckRejects feeds the checker bad examples: each must fail, naming
// what is wrong, and their corrected forms must pass.
func TestCheckRejects(t *testing.T) {
	cases := []struct{ page, bad, fixed string }{
		{"`baton checkpoint restore --sequence 3 DIR`", "no flag --sequence", "`baton checkpoint restore --seq 3 DIR`"},
		{"`baton chekpoint ls`", `no command "chekpoint"`, "`baton checkpoint ls`"},
		{"`baton checkpoint lss`", `no command "checkpoint lss"`, "`baton checkpoint ls`"},
		{"`baton checkpoint verify [--seq N | --every]`", "no flag --every", "`baton checkpoint verify [--seq N | --all]`"},
		{"`baton checkpoint hosts [--forget ID\\|--forget-everything]`", "no flag --forget-everything",
			"`baton checkpoint hosts [--forget ID\\|--forget-all]`"},
		{"`baton version --json`", "takes no arguments", "`baton version`"},
		{"`baton pull --part-size=8MiB --worker 4 SRC DIR`", "no flag --worker", "`baton pull --part-size=8MiB --workers 4 SRC DIR`"},
		{"`baton doctor --json --gpu-require`", "no flag --gpu-require", "`baton doctor --json --require-gpu`"},
		{"`baton run --detach --pidfile /x -- python t.py --not-ours`", "no flag --pidfile",
			"`baton run --detach --pid-file /x -- python t.py --not-ours`"},
		{"```sh\nbaton pull --workers many s3://b/p /data\n```", "--workers", "```sh\nbaton pull --workers 8 s3://b/p /data\n```"},
		{"```sh\nbaton checkpoint gc --store s3://b/p --keep two\n```", "--keep", "```sh\nbaton checkpoint gc --store s3://b/p --keep 2\n```"},
		{"```sh\nexport BATON_STORE=s3://b/p BATON_RUN=r\n```", "BATON_RUN is set but no baton command reads it",
			"```sh\nexport BATON_STORE=s3://b/p BATON_RUN_ID=r\n```"},
		{"```sh\nBATON_CHECKPOINT_INTERVAL=ten baton run -- python t.py\n```", "BATON_CHECKPOINT_INTERVAL",
			"```sh\nBATON_CHECKPOINT_INTERVAL=10m baton run -- python t.py\n```"},
	}
	problems := func(page string) []string {
		exs, assigns := extract("bad.md", page)
		out := checkAssignments(assigns)
		for _, ex := range exs {
			if err := checkExample(ex); err != nil {
				out = append(out, err.Error())
			}
		}
		if len(exs)+len(assigns) == 0 {
			out = append(out, "nothing extracted")
		}
		return out
	}
	for _, c := range cases {
		got := problems(c.page)
		if len(got) != 1 || !strings.Contains(got[0], c.bad) {
			t.Errorf("%q: got %q, want one problem with %q", c.page, got, c.bad)
		}
		if got := problems(c.fixed); len(got) != 0 {
			t.Errorf("%q: got %q, want none", c.fixed, got)
		}
	}
}
