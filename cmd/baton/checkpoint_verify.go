package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/internal/units"
)

// verify is "baton checkpoint verify": are the chunks of a checkpoint (or of
// all) in the store with the right length, or with --deep the right content;
// with --repair DIR, upload the damaged ones again from a local copy.
func (c *checkpointCmd) verify(ctx context.Context, args []string) error {
	var f config.CheckpointVerify
	if _, err := c.parse("verify", &f, args, 0, 0, ""); err != nil {
		return err
	}
	if f.All && f.Seq != 0 {
		return usagef("--seq and --all are exclusive")
	}
	seqFlag, all, deep, repair := int64(f.Seq), f.All, f.Deep, f.Repair
	if repair != "" {
		if fi, err := os.Stat(repair); err != nil || !fi.IsDir() {
			return usagef("--repair %s: not a directory", repair)
		}
	}
	_, repo, err := c.open(ctx, f.Repo, checkpoint.Holder{}, 0)
	if err != nil {
		return err
	}
	var seqs []int64
	switch {
	case all:
		if seqs, err = repo.Published(ctx); err != nil {
			return err
		}
		if len(seqs) == 0 {
			return noCheckpoint(f.RunID, checkpoint.ErrNoCheckpoint)
		}
	case seqFlag != 0:
		seqs = []int64{seqFlag}
	}
	report, err := repo.Verify(ctx, seqs, deep)
	if err != nil {
		return noCheckpoint(f.RunID, err)
	}
	if err := writeVerifyReport(c.env.stdout, report); err != nil {
		return err
	}
	if len(report.Damaged) > 0 && repair != "" {
		repaired, unrepaired, err := repo.Repair(ctx, report, repair)
		if err != nil {
			return fmt.Errorf("repair from %s: %w", repair, err)
		}
		fmt.Fprintf(c.env.stdout, "\nrepair from %s: uploaded %d of %d damaged chunks again", repair, len(repaired), len(report.Damaged))
		if len(unrepaired) > 0 {
			fmt.Fprintf(c.env.stdout, "; no intact copy of %d: %s", len(unrepaired), strings.Join(unrepaired, ", "))
		}
		fmt.Fprintf(c.env.stdout, "\nverifying again...\n")
		if report, err = repo.Verify(ctx, report.Seqs, deep); err != nil {
			return err
		}
		if err := writeVerifyReport(c.env.stdout, report); err != nil {
			return err
		}
	}
	if len(report.Damaged) > 0 {
		return exitCode(exitFailure) // the report said why
	}
	return nil
}

// writeVerifyReport prints the damage of r as a table, if any, and one line
// that sums it up.
func writeVerifyReport(w io.Writer, r *checkpoint.VerifyReport) error {
	what := "present with the right size"
	if r.Deep {
		what = "intact (downloaded and hashed)"
	}
	if len(r.Damaged) == 0 {
		all := "all " + units.Plural(r.Chunks, "chunk")
		if r.Chunks == 1 {
			all = "its one chunk"
		}
		_, err := fmt.Fprintf(w, "%s: %s (%s) %s\n", seqList(r.Seqs), all, units.Bytes(r.Bytes), what)
		return err
	}
	rows := [][]string{{"CHUNK", "DAMAGE", "CHECKPOINTS", "FILES"}}
	kinds := map[checkpoint.Damage]int{}
	for _, d := range r.Damaged {
		kinds[d.Err.Damage]++
		damage := string(d.Err.Damage)
		if d.Err.Damage == checkpoint.ChunkWrongSize {
			damage = fmt.Sprintf("%s: %d bytes, want %d", damage, d.Err.Size, d.Err.Want)
		}
		rows = append(rows, []string{d.Err.Hash, damage, joinSeqs(d.Checkpoints), chunkFiles(d)})
	}
	if err := writeTable(w, rows); err != nil {
		return err
	}
	var counts []string
	for _, k := range []checkpoint.Damage{checkpoint.ChunkMissing, checkpoint.ChunkWrongSize, checkpoint.ChunkWrongContent} {
		if kinds[k] > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", kinds[k], k))
		}
	}
	_, err := fmt.Fprintf(w, "%s: %d damaged %s of %d (%s); checkpoints affected: %s\n", seqList(r.Seqs), len(r.Damaged),
		plural(len(r.Damaged), "chunk", "chunks"), r.Chunks, strings.Join(counts, ", "), joinSeqs(r.Affected()))
	return err
}

// chunkFiles names the files that hold a damaged chunk, escaped for the
// terminal: the first three, and how many more.
func chunkFiles(d checkpoint.DamagedChunk) string {
	paths := d.Paths()
	var out []string
	for i, p := range paths {
		if i == 3 {
			out = append(out, fmt.Sprintf("and %d more", len(paths)-3))
			break
		}
		out = append(out, termSafe(p))
	}
	return strings.Join(out, ", ")
}

// seqList names the checkpoints seqs: "checkpoint 7", "checkpoints 1, 2, 3",
// or "12 checkpoints (1 to 40)".
func seqList(seqs []int64) string {
	switch {
	case len(seqs) == 1:
		return "checkpoint " + strconv.FormatInt(seqs[0], 10)
	case len(seqs) <= 8:
		return "checkpoints " + joinSeqs(seqs)
	}
	return fmt.Sprintf("%d checkpoints (%d to %d)", len(seqs), slices.Min(seqs), slices.Max(seqs))
}

func joinSeqs(seqs []int64) string {
	s := make([]string, len(seqs))
	for i, seq := range seqs {
		s[i] = strconv.FormatInt(seq, 10)
	}
	return strings.Join(s, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// termSafe returns s as it may reach a terminal: unchanged if every
// character of it is printable (a space is, a tab or a newline is not) and
// it does not start with a double quote; otherwise quoted as a Go string,
// control characters, invalid UTF-8 and invisible format characters (such as
// a right-to-left override) escaped. Manifests are untrusted: a path, host
// or meta value holding an escape sequence must not drive the terminal, and
// one holding a newline or a tab must not break a table.
func termSafe(s string) string {
	if !strings.HasPrefix(s, `"`) && utf8.ValidString(s) && strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) < 0 {
		return s
	}
	return strconv.Quote(s)
}

// termSafeMeta is a manifest's meta as "k=v,k=v", sorted, each key and
// value escaped for the terminal.
func termSafeMeta(meta map[string]string) string {
	pairs := make([]string, 0, len(meta))
	for k, v := range meta {
		pairs = append(pairs, termSafe(k)+"="+termSafe(v))
	}
	slices.Sort(pairs)
	return strings.Join(pairs, ",")
}
