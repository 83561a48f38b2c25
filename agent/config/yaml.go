package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseYAML reads the settings of the YAML file at path, by YAML key. The
// file is one mapping of YAML keys to scalars (and, for a list setting, to a
// list of strings, or for data a mapping of SRC to DST). An unknown or repeated
// key is an error that names it and its line.
func parseYAML(settings []Setting, path string, data []byte) (map[string]origin, error) {
	fileErr := func(line int, key, problem string, err error) error {
		return &Error{Source: SourceFile, File: path, Line: line, Key: key, Problem: problem, Err: err}
	}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, fileErr(0, "", strings.TrimPrefix(err.Error(), "yaml: "), err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, fileErr(next.Line, "", "want one YAML document, found more", err)
	}
	top := &doc
	if top.Kind == yaml.DocumentNode {
		if len(top.Content) == 0 {
			return nil, nil
		}
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return nil, nil // only comments
	}
	if top.Kind != yaml.MappingNode {
		return nil, fileErr(top.Line, "", "want a mapping of settings (key: value)", nil)
	}

	byKey := make(map[string]Setting, len(settings))
	for _, s := range settings {
		if s.YAML != "-" {
			byKey[s.YAML] = s
		}
	}
	out := map[string]origin{}
	firstLine := map[string]int{}
	for _, pair := range yamlPairs(top) {
		k, v, key := pair.k, pair.v, pair.key
		s, ok := byKey[key]
		if !ok || k.Kind != yaml.ScalarNode {
			problem := "unknown key"
			if guess := guessKey(settings, key); guess != "" {
				problem += "; did you mean " + guess + "?"
			}
			return nil, fileErr(k.Line, key, problem, nil)
		}
		if line, dup := firstLine[key]; dup {
			return nil, fileErr(k.Line, key, fmt.Sprintf("repeated key (first on line %d)", line), nil)
		}
		firstLine[key] = k.Line
		at := Origin{Source: SourceFile, Key: key, File: path, Line: k.Line}
		if s.isList() {
			o, err := yamlList(s, at, v)
			if err != nil {
				return nil, err
			}
			out[s.YAML] = o
			continue
		}
		if v.Kind != yaml.ScalarNode {
			return nil, fileErr(v.Line, key, "want a single value, not a "+kindName(v.Kind), nil)
		}
		out[s.YAML] = newOrigin(s, at, scalar(v))
	}
	return out, nil
}

// yamlPair is one key of the file and its value; the keys of the launch:
// mapping are flattened to launch.KEY (issue 16, the launch spec).
type yamlPair struct {
	key  string
	k, v *yaml.Node
}

// yamlPairs returns the keys of the file's top mapping, with a launch:
// mapping's keys in its place as launch.KEY.
func yamlPairs(top *yaml.Node) []yamlPair {
	var out []yamlPair
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], resolveAlias(top.Content[i+1])
		if k.Kind == yaml.ScalarNode && k.Value == "launch" && v.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(v.Content); j += 2 {
				lk := v.Content[j]
				out = append(out, yamlPair{"launch." + lk.Value, lk, resolveAlias(v.Content[j+1])})
			}
			continue
		}
		out = append(out, yamlPair{k.Value, k, v})
	}
	return out
}

// yamlList reads the value of a list setting: a list of strings (SRC=DST,
// or globs), for data a mapping of SRC to DST, or one string of elements
// separated by commas or newlines.
func yamlList(s Setting, at Origin, v *yaml.Node) (origin, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		return newOrigin(s, at, scalar(v)), nil
	case yaml.SequenceNode:
		o := origin{Origin: at}
		var raws []string
		for _, item := range v.Content {
			item = resolveAlias(item)
			if item.Kind != yaml.ScalarNode {
				return origin{}, &Error{Source: SourceFile, File: at.File, Line: item.Line,
					Key: fmt.Sprintf("%s[%d]", at.Key, len(o.items)), Problem: "want " + s.itemName() + ", not a " + kindName(item.Kind)}
			}
			o.addItem(scalar(item), item.Line)
			raws = append(raws, scalar(item))
		}
		o.raw = strings.Join(raws, ",")
		return o, nil
	case yaml.MappingNode:
		if s.Type != "SRC=DST list" {
			break // only data has a mapping form
		}
		o := origin{Origin: at}
		var raws []string
		for i := 0; i+1 < len(v.Content); i += 2 {
			src, dst := v.Content[i], resolveAlias(v.Content[i+1])
			if src.Kind != yaml.ScalarNode || dst.Kind != yaml.ScalarNode {
				return origin{}, &Error{Source: SourceFile, File: at.File, Line: src.Line,
					Key: fmt.Sprintf("%s[%d]", at.Key, len(o.items)), Problem: "want SRC: DST with two strings"}
			}
			// The separator is the last "=", so a SRC with "=" (an S3 URL's
			// query) still splits where the mapping says.
			raw := scalar(src) + "=" + scalar(dst)
			o.addItem(raw, src.Line)
			raws = append(raws, raw)
		}
		o.raw = strings.Join(raws, ",")
		return o, nil
	}
	what := "globs"
	switch s.Type {
	case "SRC=DST list":
		what = "SRC=DST"
	case "URL list":
		what = "URLs"
	case "argument list": // issue 16: command
		what = "words"
	}
	return origin{}, &Error{Source: SourceFile, File: at.File, Line: v.Line, Key: at.Key,
		Problem: "want a list of " + what + ", not a " + kindName(v.Kind)}
}

// scalar is the text of a scalar node; null is empty.
func scalar(n *yaml.Node) string {
	if n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

// resolveAlias follows an alias to the node it names.
func resolveAlias(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// kindName names a node kind for an error message.
func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.MappingNode:
		return "mapping"
	case yaml.ScalarNode:
		return "single value"
	}
	return "YAML node"
}

// guessKey returns the YAML key that key was probably meant to be, written
// as a flag (checkpoint-interval) or a variable (BATON_CHECKPOINT_INTERVAL),
// or "".
func guessKey(settings []Setting, key string) string {
	norm := strings.ToLower(strings.ReplaceAll(strings.TrimLeft(key, "-"), "-", "_"))
	norm = strings.TrimPrefix(norm, "baton_")
	for _, s := range settings {
		if s.YAML != "-" && (norm == s.YAML || norm == strings.ReplaceAll(s.Flag, "-", "_")) {
			return s.YAML
		}
	}
	return ""
}
