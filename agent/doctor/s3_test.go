package doctor

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/s3minio"
	"github.com/batonrun/baton/sync/storage"
)

// TestStoreRoundTripS3 runs the round trip against a real versitygw with
// both drivers: root passes; a user who owns nothing, a wrong secret, a
// missing bucket and a dead endpoint each fail with a reason that names the
// cause, the last within seconds.
func TestStoreRoundTripS3(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw, s3test.Users())
	bucket := srv.NewBucket(t)
	userKey, userSecret := srv.NewUser(t)
	drivers := map[string]func(context.Context, s3config.Config) (storage.Store, error){
		"aws":   func(ctx context.Context, c s3config.Config) (storage.Store, error) { return s3aws.New(ctx, c) },
		"minio": func(ctx context.Context, c s3config.Config) (storage.Store, error) { return s3minio.New(ctx, c) },
	}
	cases := []struct {
		name   string
		change func(c *s3config.Config)
		status Status
		reason string
		kind   string
	}{
		{name: "root", change: func(*s3config.Config) {}, status: OK, reason: "writable, create-only writes enforced"},
		{name: "user without permission", change: func(c *s3config.Config) { c.AccessKey, c.SecretKey = userKey, userSecret },
			status: Fail, reason: "put_if_absent: permission denied", kind: "permission"},
		{name: "wrong secret", change: func(c *s3config.Config) { c.SecretKey = "wrong-secret-value-123" },
			status: Fail, reason: "put_if_absent: credentials rejected", kind: "credentials"},
		{name: "missing bucket", change: func(c *s3config.Config) { c.Bucket = "no-such-bucket" },
			status: Fail, reason: "put_if_absent: the bucket does not exist", kind: "no_bucket"},
		{name: "wrong endpoint", change: func(c *s3config.Config) { c.Endpoint = "http://127.0.0.1:1" },
			status: Fail, reason: "put_if_absent: endpoint unreachable", kind: "unreachable"},
	}
	for driver, open := range drivers {
		for _, c := range cases {
			t.Run(driver+"/"+c.name, func(t *testing.T) {
				cfg := srv.Config(bucket, "doctor/"+driver)
				c.change(&cfg)
				o := baseOptions(t, map[string]string{"BATON_STORE": "s3://" + cfg.Bucket + "/doctor", "BATON_RUN_ID": "r"})
				o.OpenStore = func(ctx context.Context, _ string) (storage.Store, error) { return open(ctx, cfg) }
				start := time.Now()
				r := Run(t.Context(), o)
				elapsed := time.Since(start)
				got := findCheck(t, r, "store")
				if got.Status != c.status || !strings.Contains(got.Reason, c.reason) {
					t.Fatalf("store = %+v\nsteps %+v\nwant %s with %q", got, r.Store.Steps, c.status, c.reason)
				}
				if c.kind != "" {
					last := r.Store.Steps[len(r.Store.Steps)-1]
					if last.Kind != c.kind {
						t.Fatalf("failed step %+v, want kind %s", last, c.kind)
					}
				}
				if c.name == "wrong endpoint" && elapsed > 5*time.Second {
					t.Fatalf("an unreachable endpoint took %s to report", elapsed)
				}
				if wantExit := map[Status]int{OK: 0, Fail: 1}[c.status]; r.ExitCode != wantExit {
					t.Fatalf("exit code %d, want %d", r.ExitCode, wantExit)
				}
			})
		}
	}
	// Nothing is left under the probe prefix.
	out, err := srv.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range out.Contents {
		if strings.Contains(aws.ToString(obj.Key), ProbePrefix) {
			t.Errorf("left behind: %s", aws.ToString(obj.Key))
		}
	}
}

// TestStoreRoundTripMinIO checks that the round trip passes on MinIO too,
// whose create-only writes are enforced only for single PUTs of a known size.
func TestStoreRoundTripMinIO(t *testing.T) {
	srv := s3test.Start(t, s3test.MinIO)
	bucket := srv.NewBucket(t)
	for _, driver := range []string{"aws", "minio"} {
		t.Run(driver, func(t *testing.T) {
			cfg := srv.Config(bucket, "doctor")
			o := baseOptions(t, map[string]string{"BATON_STORE": "s3://" + bucket + "/doctor", "BATON_RUN_ID": "r"})
			o.OpenStore = func(ctx context.Context, _ string) (storage.Store, error) {
				if driver == "minio" {
					return s3minio.New(ctx, cfg)
				}
				return s3aws.New(ctx, cfg)
			}
			r := Run(t.Context(), o)
			if got := findCheck(t, r, "store"); got.Status != OK {
				t.Fatalf("store = %+v\nsteps %+v", got, r.Store.Steps)
			}
		})
	}
}
