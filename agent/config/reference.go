package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Reference returns the Markdown table of every setting of baton run: its
// name, flag, environment variable, YAML key, type, default and meaning,
// from Config's struct tags. docs/config.md holds it (go generate
// ./agent/config).
func Reference() string { return referenceOf(Settings()) }

// referenceOf returns the Markdown table of the given settings.
func referenceOf(settings []Setting) string {
	var b strings.Builder
	b.WriteString("| setting | flag | environment | YAML key | type | default | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range settings {
		yamlKey := "—"
		if s.YAML != "-" {
			yamlKey = code(s.YAML)
		}
		typ := s.Type
		if s.Values != nil {
			typ = strings.Join(s.Values, ", ")
		}
		def := "—"
		if s.Default != "" {
			def = code(s.Default)
		}
		env := "—"
		if s.Env != "-" {
			env = code(s.Env)
		}
		help := s.Help
		if base, _ := configSetting(s.Flag); s.Shared && help == base.Help {
			help = "as for `baton run`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
			settingName(s), code("--"+s.Flag), env, yamlKey, cell(typ), def, cell(help))
	}
	return b.String()
}

// Usage returns the flags of "baton run" as plain text for -h.
func Usage() string { return UsageOf(new(Config)) }

// UsageOf returns the flags of the settings struct that dst points to as
// plain text for -h: each flag with its variable, default and meaning.
func UsageOf(dst any) string {
	var b strings.Builder
	for _, s := range SettingsOf(dst) {
		fmt.Fprintf(&b, "  --%s%s  (", s.Flag, placeholder(s))
		var notes []string
		if s.Env != "-" {
			notes = append(notes, s.Env)
		} else {
			notes = append(notes, "flag only")
		}
		if s.Default != "" {
			notes = append(notes, "default "+s.Default)
		}
		fmt.Fprintf(&b, "%s)\n      %s\n", strings.Join(notes, ", "), s.Help)
	}
	return b.String()
}

// placeholder stands for the value of s after its flag in Usage.
func placeholder(s Setting) string {
	if s.Values != nil {
		return " " + strings.Join(s.Values, "|")
	}
	switch s.Type {
	case "boolean":
		return "" // --detach, or --detach=false
	case "integer":
		return " N"
	case "SRC=DST list":
		return " SRC=DST[,SRC=DST...]"
	case "glob list":
		return " GLOB[,GLOB...]"
	case "URL list":
		return " URL[,URL...]"
	case "name list":
		return " NAME[,NAME...]"
	case "KEY=VALUE list":
		return " KEY=VALUE"
	case "argument list": // issue 16: one --command per word
		return " WORD"
	}
	return " " + strings.ToUpper(s.Type) // STRING, DURATION, SIZE
}

// settingName is the setting's name in words: "checkpoint interval".
func settingName(s Setting) string {
	name := s.YAML
	switch {
	case s.Flag == "config":
		name = "config file"
	case name == "-":
		name = s.Flag
	}
	return strings.NewReplacer("_", " ", "-", " ").Replace(name)
}

// embeds reports whether the settings struct that dst points to embeds a T;
// an embedded Config comes first, a LaunchSpec second, so that their
// settings lead SettingsOf's list.
func embeds[T any](dst any) bool {
	f, ok := reflect.TypeOf(dst).Elem().FieldByName(reflect.TypeFor[T]().Name())
	return ok && f.Anonymous && f.Type == reflect.TypeFor[T]()
}

// code writes s as inline code.
func code(s string) string { return "`" + s + "`" }

// cell escapes s for a Markdown table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// docExample is the YAML example of docs/config.md; a test loads and
// validates it.
const docExample = `# baton.yaml: baton run --config baton.yaml -- python train.py
store: s3://my-bucket/baton
run_id: llama-ft-7
checkpoint_dir: /workspace/checkpoints   # RunPod: under the volume that survives a stop
checkpoint_interval: 15m
keep: 5
code: https://github.com/me/trainer.git#v1.2
data:
  - s3://my-bucket/datasets/tokens=/data/tokens
  - s3://my-bucket/datasets/eval=/data/eval
on_exit: stop
restarts: 2
exclude: ["*.tmp", "*.partial", "tmp-checkpoint-*", "*.lock"]   # replaces the defaults: repeat them to keep them
`

// document returns the whole of docs/config.md.
func document() string {
	return `# Configuring baton

<!-- Generated from the struct tags of agent/config (Config and the structs of commands.go) by "go generate ./agent/config"; do not edit. -->

` + "`baton run`" + ` is configured below; every other command reads its settings the same way, and shares the names of
those it has in common with ` + "`baton run`" + `: see [The other commands](#the-other-commands).

Every setting of ` + "`baton run`" + ` can be given four ways. The first that is set wins:

1. a command-line flag: ` + "`--checkpoint-interval=15m`" + ` (or ` + "`-checkpoint-interval 15m`" + `);
2. a ` + "`BATON_*`" + ` environment variable: ` + "`BATON_CHECKPOINT_INTERVAL=15m`" + ` (an empty variable counts as unset);
3. a key of the YAML file named by ` + "`--config`" + ` or ` + "`BATON_CONFIG`" + `: ` + "`checkpoint_interval: 15m`" + `;
4. the default below.

The trainer's command follows the flags, best after ` + "`--`" + `: ` + "`baton run --store s3://my-bucket/p --run r1 -- python train.py --lr 3e-4`" + `.
Everything after the first ` + "`--`" + ` reaches the trainer unchanged, including arguments that look like baton's flags.

Durations are written as Go writes them (` + "`30s`" + `, ` + "`10m`" + `, ` + "`1h30m`" + `); sizes in bytes or with a binary unit
(` + "`16MiB`" + `, ` + "`512KiB`" + `, ` + "`1GiB`" + `; ` + "`M`" + ` is MiB). A list (` + "`data`" + `, ` + "`exclude`" + `, ` + "`notify`" + `) comes whole from one place: repeated
flags add up and replace the variable (elements separated by commas), which replaces the file's list, which replaces the
default. In ` + "`SRC=DST`" + ` the last ` + "`=`" + ` separates the two, so a SRC may carry an S3 query
(` + "`s3://my-bucket/d?region=eu-west-1=/data`" + `) and a DST may not contain ` + "`=`" + `.

` + "`exclude`" + ` names what commits leave out; by default ` + "`*.tmp`" + `, ` + "`*.partial`" + ` and ` + "`tmp-checkpoint-*`" + `, the names trainers
give a checkpoint while they write it (PyTorch's and Hugging Face's ` + "`tmp-checkpoint-N`" + ` directories, files saved
as ` + "`x.tmp`" + ` and renamed to ` + "`x`" + `). A commit that runs while the trainer saves then takes everything else instead of
being dropped because a file changed under it; the renamed result goes into the next commit. Each glob is matched, in
` + "`path.Match`" + ` syntax (` + "`*`" + `, ` + "`?`" + `, ` + "`[a-z]`" + `), against a file's or directory's name alone, and a matching directory
is left out with everything in it. A list you give replaces the defaults: to add ` + "`*.lock`" + `, write
` + "`--exclude='*.tmp,*.partial,tmp-checkpoint-*,*.lock'`" + `; to leave nothing out, ` + "`--exclude=`" + ` or ` + "`exclude: []`" + `.
In YAML, quote a glob that starts with ` + "`*`" + ` (` + "`- \"*.tmp\"`" + `): unquoted, YAML reads it as an alias.

` + "`grace`" + ` and ` + "`stop_window`" + ` split the time from the platform's SIGTERM to its SIGKILL between the trainer's exit
and the final commit; by default they follow the detected platform: see [The stop budget](run.md#the-stop-budget).

A bad setting stops baton with exit status 2 and one line that names the key as you wrote it, before anything is
pulled: ` + "`BATON_CHECKPOINT_INTERVAL=\"ten\": not a duration (want e.g. 30s, 10m, 1h30m)`" + `,
` + "`baton.yaml:9: data[1]: \"foo\": not SRC=DST`" + ` (list elements count from 0). An unknown YAML key is an error too.
The store, data and code URLs are checked the same way, from the URL alone: the scheme, S3's bucket naming rules, the
prefix and every ` + "`?parameter`" + `, as in
` + "`--store=s3://my-bucket/p?regoin=x: unknown parameter \"regoin\" (known: endpoint, region, profile, driver, addressing)`" + `;
so a typo stops baton before it opens a port, takes the lease or writes anything.
The value of a secret (a name containing KEY, SECRET, TOKEN, PASSWORD or CREDENTIAL) and credentials inside URLs
are never echoed, and of a ` + "`notify`" + ` URL only the scheme and host are (Slack's and Discord's webhook URLs hold
their token in the path). Store credentials come from the standard ` + "`AWS_*`" + ` variables, never from a URL.

## Example

` + "```yaml\n" + docExample + "```" + `

## Reference

` + Reference() + commandsReference()
}

// commandsReference documents the settings of every command but baton run,
// from the same tags.
func commandsReference() string {
	var b strings.Builder
	b.WriteString(`
## The other commands

Every command reads its settings the same way as ` + "`baton run`" + `: flag, then ` + "`BATON_*`" + ` variable, then the file named
by ` + "`--config`" + `, then the default; a setting shared with ` + "`baton run`" + ` (` + "`store`" + `, ` + "`run_id`" + `, ` + "`workers`" + `, ...) has the
same names, default, checks and meaning, so ` + "`baton checkpoint ls --config baton.yaml`" + ` lists the checkpoints of the
run that file configures, and a key of the file that a command has no use for is left alone. An option that only makes
sense for one invocation (` + "`--json`" + `, ` + "`--force`" + `, ` + "`--seq`" + `) is a flag alone (— below): no variable left in a
container's environment, and no key of a file written for ` + "`baton run`" + `, changes what one command does.
`)
	cmds := Commands()[1:] // all but run
	specShown := false
	for i := 0; i < len(cmds); {
		// Commands of one settings struct (pull and push, ls and show)
		// share a section.
		j := i + 1
		for j < len(cmds) && reflect.TypeOf(cmds[j].Settings()) == reflect.TypeOf(cmds[i].Settings()) {
			j++
		}
		var names, synopses []string
		for _, c := range cmds[i:j] {
			names = append(names, "baton "+c.Name)
			synopses = append(synopses, "`baton "+c.Synopsis+"`")
		}
		fmt.Fprintf(&b, "\n### %s\n\n%s\n\n", strings.Join(names, ", "), strings.Join(synopses, "<br>"))
		settings := SettingsOf(cmds[i].Settings())
		if embeds[Config](cmds[i].Settings()) {
			settings = settings[len(Settings()):]
			if embeds[LaunchSpec](cmds[i].Settings()) { // issue 16: launch and watch
				spec := specSettings()
				settings = settings[len(spec):]
				if !specShown {
					b.WriteString("Every setting of `baton run` (the table above); the run's launch spec, which `baton launch` and `baton watch` share " +
						"(`command:` at the top of the file, the others as the keys of a `launch:` mapping; see docs/launch.md):\n\n")
					b.WriteString(referenceOf(spec))
					b.WriteString("\nand:\n\n")
					specShown = true
				} else {
					b.WriteString("Every setting of `baton run` and of the launch spec (above), and:\n\n")
				}
			} else {
				b.WriteString("Every setting of `baton run` (the table above), and:\n\n")
			}
		}
		b.WriteString(referenceOf(settings))
		i = j
	}
	return b.String()
}
