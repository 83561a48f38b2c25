package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/faultproxy"
	"github.com/batonrun/baton/internal/s3test"
)

// slowRate is how fast the proxy passes bytes each way: the 4 MiB of
// slowStore take two seconds at least on any machine, twice the second a
// transfer runs before it is shown.
const slowRate = 2 << 20

// slowStore starts a versitygw holding 4 files of 1 MiB under data/ and
// returns the store's URL through a slowed proxy, and the environment that
// gives its credentials.
func slowStore(t *testing.T) (url string, environ map[string]string) {
	srv := s3test.Start(t, s3test.Versitygw)
	bucket := srv.NewBucket(t)
	environ = map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey, "AWS_REGION": srv.Region}
	src := t.TempDir()
	for i := range 4 {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("shard-%d", i)), bytes.Repeat([]byte{byte(i)}, 1<<20), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if r := runBaton(t, environ, "push", "--progress=none", src, "s3://"+bucket+"/data?endpoint="+srv.Endpoint); r.code != exitOK {
		t.Fatalf("push: %+v", r)
	}
	return "s3://" + bucket + "/data?endpoint=" + faultproxy.Start(t, strings.TrimPrefix(srv.Endpoint, "http://"), faultproxy.Options{BytesPerSecond: slowRate}).URL(), environ
}

// TestPullLogsJSONProgressOffATerminal: with stderr not a terminal, the same
// pull logs JSON lines, their numbers plain: a first with the totals and a
// last with what moved.
func TestPullLogsJSONProgressOffATerminal(t *testing.T) {
	url, environ := slowStore(t)
	dir := t.TempDir()
	r := runBaton(t, environ, "pull", "--workers=2", url, dir)
	if r.code != exitOK {
		t.Fatalf("pull: %+v", r)
	}
	what := "pulling " + strings.Split(url, "?")[0] + " into " + dir
	var lines []map[string]any
	for line := range strings.Lines(r.stderr) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("stderr line %q is not JSON: %v", line, err)
		}
		if strings.HasPrefix(m["msg"].(string), what) {
			lines = append(lines, m)
		}
	}
	if len(lines) < 2 {
		t.Fatalf("stderr %s, want a first and a last progress line", r.stderr)
	}
	first, last := lines[0], lines[len(lines)-1]
	if first["msg"] != what || first["files_total"] != 4.0 || first["total_bytes"] != float64(4<<20) {
		t.Errorf("first line %v, want %q with files_total 4 and total_bytes %d", first, what, 4<<20)
	}
	if last["msg"] != what+": done" || last["files_done"] != 4.0 || last["done_bytes"] != float64(4<<20) ||
		last["elapsed_s"].(float64) < 2 || last["rate_bytes_per_s"].(float64) > slowRate {
		t.Errorf("last line %v, want done with 4 files, %d bytes, in 2s or more at %d bytes/s or less", last, 4<<20, slowRate)
	}
}

// TestCheckpointCommitAndRestoreLogProgress: baton checkpoint commit and
// restore, off a terminal and through a slowed proxy, log a first line with
// their totals and a last with what moved.
func TestCheckpointCommitAndRestoreLogProgress(t *testing.T) {
	url, environ := slowStore(t)
	store := strings.Replace(url, "/data?", "/ckpt?", 1)
	dir, into := t.TempDir(), filepath.Join(t.TempDir(), "ckpt")
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), bytes.Repeat([]byte("weights!"), 512<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		what string
	}{
		{[]string{"checkpoint", "commit", "--store", store, "--run", "r1", dir}, "committing " + dir + " as the next checkpoint of run r1"},
		{[]string{"checkpoint", "restore", "--store", store, "--run", "r1", into}, "restoring checkpoint 1 of run r1 into " + into},
	} {
		r := runBaton(t, environ, c.args...)
		if r.code != exitOK {
			t.Fatalf("%s: %+v", c.args[1], r)
		}
		for _, want := range []string{
			fmt.Sprintf(`"msg":%q,"files_total":1,"total_bytes":4194304}`, c.what),
			fmt.Sprintf(`"msg":"%s: done","files_done":1,"files_total":1,"done_bytes":4194304,"total_bytes":4194304,`, c.what),
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s logged %s, want %s", c.args[1], r.stderr, want)
			}
		}
	}
}
