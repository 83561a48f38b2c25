package s3test

import (
	"slices"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestStart(t *testing.T) {
	for _, kind := range Kinds() {
		for _, tls := range []bool{false, true} {
			name := kind
			var opts []Option
			if tls {
				name += "/tls"
				opts = append(opts, TLS())
			}
			t.Run(name, func(t *testing.T) {
				srv := Start(t, kind, opts...)
				bucket := srv.NewBucket(t)
				out, err := srv.Client().ListBuckets(t.Context(), &s3.ListBucketsInput{})
				if err != nil {
					t.Fatal(err)
				}
				var names []string
				for _, b := range out.Buckets {
					names = append(names, *b.Name)
				}
				if !slices.Contains(names, bucket) {
					t.Errorf("buckets %q lack %q", names, bucket)
				}
				if cfg := srv.Config(bucket, "p"); cfg.Endpoint != srv.Endpoint || cfg.Bucket != bucket || cfg.AccessKey == "" {
					t.Errorf("Config = %+v", cfg)
				}
			})
		}
	}
}

func TestMissingBinary(t *testing.T) {
	t.Setenv("BATON_TOOLS", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	t.Setenv("PATH", t.TempDir())
	if _, err := Binary("minio"); err == nil {
		t.Fatal("found a minio binary in empty directories")
	}
}
