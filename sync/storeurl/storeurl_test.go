package storeurl

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonrun/baton/sync/file"
)

func TestOpenFileStores(t *testing.T) {
	dir := t.TempDir()
	for _, raw := range []string{dir, "file://" + dir, "file://localhost" + dir} {
		s, err := Open(t.Context(), raw, Options{})
		if err != nil {
			t.Fatalf("Open(%q): %v", raw, err)
		}
		fs, ok := s.(*file.Store)
		if !ok || fs.Root() != dir {
			t.Fatalf("Open(%q) = %v, want the file store at %s", raw, s, dir)
		}
	}
}

func TestS3Config(t *testing.T) {
	env := map[string]string{"AWS_ENDPOINT_URL_S3": "http://env:9000", "AWS_REGION": "eu-west-1"}
	getenv := func(k string) string { return env[k] }
	cases := []struct {
		raw        string
		opts       Options
		bucket     string
		prefix     string
		endpoint   string
		region     string
		driver     string
		pathStyle  bool
		wantErrSub string
	}{
		{raw: "s3://bucket", bucket: "bucket", endpoint: "http://env:9000", region: "eu-west-1", driver: DefaultDriver, pathStyle: true},
		{raw: "s3://my.bucket-1/a/b/", bucket: "my.bucket-1", prefix: "a/b", endpoint: "http://env:9000", region: "eu-west-1", driver: DefaultDriver, pathStyle: true},
		{raw: "s3://b-1/p?endpoint=https://r2.example&region=auto&driver=minio", bucket: "b-1", prefix: "p", endpoint: "https://r2.example", region: "auto", driver: DriverMinio, pathStyle: true},
		{raw: "s3://b-1/p?addressing=virtual", bucket: "b-1", prefix: "p", endpoint: "http://env:9000", region: "eu-west-1", driver: DefaultDriver, pathStyle: false},
		{raw: "s3://b-1", opts: Options{Driver: DriverMinio}, bucket: "b-1", endpoint: "http://env:9000", region: "eu-west-1", driver: DriverMinio, pathStyle: true},
		{raw: "s3://b-1?driver=aws", opts: Options{Driver: DriverMinio}, bucket: "b-1", endpoint: "http://env:9000", region: "eu-west-1", driver: DriverAWS, pathStyle: true},
		{raw: "s3://B_1/x", wantErrSub: "not a valid bucket name"},
		{raw: "s3://ab/x", wantErrSub: "not a valid bucket name"},
		{raw: "s3://bucket/a/../b", wantErrSub: "prefix"},
		{raw: "s3://bucket?driver=gcs", wantErrSub: `driver="gcs"`},
		{raw: "s3://bucket?addressing=sideways", wantErrSub: "addressing"},
		{raw: "s3://bucket?secret=x", wantErrSub: `unknown parameter "secret"`},
	}
	for _, c := range cases {
		t.Run(c.raw, func(t *testing.T) {
			c.opts.Getenv = getenv
			u, err := parseURL(c.raw)
			if err != nil {
				t.Fatal(err)
			}
			cfg, driver, err := s3Config(u, c.opts)
			if c.wantErrSub != "" {
				if err == nil || !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), c.wantErrSub) {
					t.Fatalf("error %v, want a bad-URL error saying %q", err, c.wantErrSub)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Bucket != c.bucket || cfg.Prefix != c.prefix || cfg.Endpoint != c.endpoint || cfg.Region != c.region || driver != c.driver || cfg.PathStyle != c.pathStyle {
				t.Fatalf("got bucket %q prefix %q endpoint %q region %q driver %q path-style %v", cfg.Bucket, cfg.Prefix, cfg.Endpoint, cfg.Region, driver, cfg.PathStyle)
			}
		})
	}
}

func TestBadURLsAreUsageErrorsWithoutSecrets(t *testing.T) {
	for _, raw := range []string{"s3://AKIA:topsecretvalue@bucket/x", "gs://bucket/x", "file://relative/x", "file:///x?y=1", "", "s3://%zz"} {
		_, err := Open(t.Context(), raw, Options{})
		if !errors.Is(err, ErrBadURL) {
			t.Errorf("Open(%q) = %v, want ErrBadURL", raw, err)
		}
		if err != nil && strings.Contains(err.Error(), "topsecretvalue") {
			t.Errorf("Open(%q) printed the secret: %v", raw, err)
		}
	}
}
