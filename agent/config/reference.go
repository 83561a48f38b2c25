package config

import (
	"fmt"
	"strings"
)

// Reference returns the Markdown table of every setting: its name, flag,
// environment variable, YAML key, type, default and meaning, from Config's
// struct tags. docs/config.md holds it (go generate ./agent/config).
func Reference() string {
	var b strings.Builder
	b.WriteString("| setting | flag | environment | YAML key | type | default | meaning |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range Settings() {
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
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n",
			settingName(s), code("--"+s.Flag), code(s.Env), yamlKey, cell(typ), def, cell(s.Help))
	}
	return b.String()
}

// Usage returns the flags of "baton run" as plain text for -h: each flag
// with its variable, default and meaning.
func Usage() string {
	var b strings.Builder
	for _, s := range Settings() {
		fmt.Fprintf(&b, "  --%s%s  (%s", s.Flag, placeholder(s), s.Env)
		if s.Default != "" {
			fmt.Fprintf(&b, ", default %s", s.Default)
		}
		fmt.Fprintf(&b, ")\n      %s\n", s.Help)
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
	}
	return " " + strings.ToUpper(s.Type) // STRING, DURATION, SIZE
}

// settingName is the setting's name in words: "checkpoint interval".
func settingName(s Setting) string {
	name := s.YAML
	if name == "-" {
		name = s.Flag + " file"
	}
	return strings.NewReplacer("_", " ", "-", " ").Replace(name)
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
grace: 3s                                # RunPod spot gives 5s
`

// document returns the whole of docs/config.md.
func document() string {
	return `# Configuring ` + "`baton run`" + `

<!-- Generated from the struct tags of agent/config.Config by "go generate ./agent/config"; do not edit. -->

Every setting of ` + "`baton run`" + ` can be given four ways. The first that is set wins:

1. a command-line flag: ` + "`--checkpoint-interval=15m`" + ` (or ` + "`-checkpoint-interval 15m`" + `);
2. a ` + "`BATON_*`" + ` environment variable: ` + "`BATON_CHECKPOINT_INTERVAL=15m`" + ` (an empty variable counts as unset);
3. a key of the YAML file named by ` + "`--config`" + ` or ` + "`BATON_CONFIG`" + `: ` + "`checkpoint_interval: 15m`" + `;
4. the default below.

The trainer's command follows the flags, best after ` + "`--`" + `: ` + "`baton run --store s3://b/p --run r1 -- python train.py --lr 3e-4`" + `.
Everything after the first ` + "`--`" + ` reaches the trainer unchanged, including arguments that look like baton's flags.

Durations are written as Go writes them (` + "`30s`" + `, ` + "`10m`" + `, ` + "`1h30m`" + `); sizes in bytes or with a binary unit
(` + "`16MiB`" + `, ` + "`512KiB`" + `, ` + "`1GiB`" + `; ` + "`M`" + ` is MiB). A list (` + "`data`" + `) comes whole from one place: repeated
` + "`--data`" + ` flags add up and replace ` + "`BATON_DATA`" + `, which replaces the file's list. In ` + "`SRC=DST`" + ` the last ` + "`=`" + ` separates
the two, so a SRC may carry an S3 query (` + "`s3://b/d?region=eu-west-1=/data`" + `) and a DST may not contain ` + "`=`" + `.

A bad setting stops baton with exit status 2 and one line that names the key as you wrote it, before anything is
pulled: ` + "`BATON_CHECKPOINT_INTERVAL=\"ten\": not a duration (want e.g. 30s, 10m, 1h30m)`" + `,
` + "`baton.yaml:9: data[1]: \"foo\": not SRC=DST`" + ` (list elements count from 0). An unknown YAML key is an error too.
The value of a secret (a name containing KEY, SECRET, TOKEN, PASSWORD or CREDENTIAL) and credentials inside URLs
are never echoed. Store credentials come from the standard ` + "`AWS_*`" + ` variables, never from a URL.

## Example

` + "```yaml\n" + docExample + "```" + `

## Reference

` + Reference()
}
