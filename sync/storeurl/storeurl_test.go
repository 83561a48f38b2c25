package storeurl

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/s3config"
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
		{raw: "s3://B_1/x", wantErrSub: `"B_1" is not a valid bucket name`},
		{raw: "s3://ab/x", wantErrSub: `"ab" is not a valid bucket name`},
		{raw: "s3://bucket/a/../b", wantErrSub: "prefix"},
		{raw: "s3://bucket?driver=gcs", wantErrSub: `driver="gcs"`},
		{raw: "s3://bucket?addressing=sideways", wantErrSub: "addressing"},
		{raw: "s3://bucket?secret=x", wantErrSub: `unknown parameter "secret"`},
	}
	for _, c := range cases {
		t.Run(c.raw, func(t *testing.T) {
			c.opts.Getenv = getenv
			loc, err := parse(c.raw)
			var cfg s3config.Config
			var driver string
			if err == nil {
				cfg, driver, err = s3Config(c.raw, loc, c.opts)
			}
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

// TestCheck covers every problem Check finds in a URL alone, and that Open
// finds the same ones before it opens anything.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		raw     string
		problem string // "": valid
		url     string // URLError.URL, when problem is set
	}{
		{raw: "/data/store"},
		{raw: "relative/dir"},
		{raw: "file:///data/store"},
		{raw: "file://localhost/data/store"},
		{raw: "s3://bucket"},
		{raw: "s3://my.bucket-1/a/b/"},
		{raw: "s3://123/p"},
		{raw: "s3://" + strings.Repeat("a", 63) + "/p"},
		{raw: "s3://b-1/p?endpoint=https://r2.example&region=auto&driver=minio&profile=x&addressing=path"},
		{raw: "s3://b-1/p?endpoint=127.0.0.1:9000"},
		{raw: "s3://b-1/p?driver=aws&addressing=virtual"},
		{raw: "", problem: "empty"},
		{raw: "  ", problem: "empty"},
		{raw: "s3:/bucket/p", problem: "want s3://bucket/prefix (two slashes)"},
		{raw: "s3://%zz", problem: "cannot parse it as a URL"},
		{raw: "gs://bucket/x", problem: `unknown scheme "gs": want s3://bucket/prefix, file:///path or a path`, url: "gs://bucket/x"},
		{raw: "s3://AKIA:topsecretvalue@bucket/x", problem: "credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile) instead", url: "s3://[REDACTED]@bucket/x"},
		{raw: "s3://bucket/x#frag", problem: "a store URL has no #fragment (write a # in a prefix as %23)", url: "s3://bucket/x#frag"},
		{raw: "file://relative/x", problem: "a file URL needs an absolute path: file:///absolute/path (three slashes)", url: "file://relative/x"},
		{raw: "file://", problem: "no path; want file:///absolute/path", url: "file://"},
		{raw: "file:///x?y=1", problem: "a file URL takes no parameters", url: "file:///x?y=1"},
		{raw: "s3:///p", problem: "no bucket; want s3://bucket/prefix", url: "s3:///p"},
		{raw: "s3://ab/p", problem: `"ab" is not a valid bucket name: want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit`, url: "s3://ab/p"},
		{raw: "s3://" + strings.Repeat("a", 64) + "/p", problem: `"` + strings.Repeat("a", 64) + `" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://My-Bucket/p", problem: `"My-Bucket" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://my_bucket/p", problem: `"my_bucket" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://-bucket/p", problem: `"-bucket" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://bucket-/p", problem: `"bucket-" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://.bucket/p", problem: `".bucket" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://bucket./p", problem: `"bucket." is not a valid bucket name: want 3 to 63`},
		{raw: "s3://my..bucket/p", problem: `"my..bucket" is not a valid bucket name: two dots in a row`},
		{raw: "s3://192.168.5.4/p", problem: `"192.168.5.4" is not a valid bucket name: it is an IP address`},
		{raw: "s3://bucket:9000/p", problem: `"bucket:9000" is not a valid bucket name: want 3 to 63`},
		{raw: "s3://bucket/a/../b", problem: `prefix "a/../b": `},
		{raw: "s3://bucket/p?foo=1", problem: `unknown parameter "foo" (known: endpoint, region, profile, driver, addressing)`, url: "s3://bucket/p?foo=1"},
		{raw: "s3://bucket/p?region=x&Region=y", problem: `unknown parameter "Region"`},
		{raw: "s3://bucket/p?zzz=1&aaa=2", problem: `unknown parameter "aaa"`}, // the first in order, every time
		{raw: "s3://bucket/p?driver=gcs", problem: `driver="gcs": want aws or minio`},
		{raw: "s3://bucket/p?addressing=sideways", problem: `addressing="sideways": want path or virtual`},
		{raw: "s3://bucket/p?endpoint=", problem: "endpoint: empty"},
		{raw: "s3://bucket/p?endpoint=ftp://host", problem: "endpoint: want http:// or https://"},
		{raw: "s3://bucket/p?endpoint=https://", problem: "endpoint: no host"},
		{raw: "s3://bucket/p?endpoint=https://u:topsecretvalue@host", problem: "endpoint: credentials do not belong in the URL"},
		{raw: "s3://bucket/p?a=%zz", problem: "the parameters after ? do not parse"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			err := Check(tc.raw)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			var ue *URLError
			if !errors.As(err, &ue) || !errors.Is(err, ErrBadURL) {
				t.Fatalf("Check = %v (%T), want a *URLError wrapping ErrBadURL", err, err)
			}
			if !strings.HasPrefix(ue.Problem, tc.problem) {
				t.Errorf("Problem = %q, want it to start with %q", ue.Problem, tc.problem)
			}
			if tc.url != "" && ue.URL != tc.url {
				t.Errorf("URL = %q, want %q", ue.URL, tc.url)
			}
			if strings.Contains(err.Error(), "topsecretvalue") {
				t.Errorf("the secret shows: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("more than one line: %q", err)
			}
			// Open finds the same problem, and opens nothing.
			if _, oerr := Open(t.Context(), tc.raw, Options{}); oerr == nil || oerr.Error() != err.Error() {
				t.Errorf("Open = %v, want %v", oerr, err)
			}
		})
	}
}

// TestOpenChecksTheEnvironment checks what Check leaves to Open: an
// endpoint from the environment and a driver from Options.
func TestOpenChecksTheEnvironment(t *testing.T) {
	getenv := func(k string) string {
		if k == "AWS_ENDPOINT_URL_S3" {
			return "ftp://u:topsecretvalue@host"
		}
		return ""
	}
	_, err := Open(t.Context(), "s3://bucket/p", Options{Getenv: getenv})
	if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), "endpoint (from the environment)") || strings.Contains(err.Error(), "topsecretvalue") {
		t.Errorf("bad endpoint in the environment: %v", err)
	}
	_, err = Open(t.Context(), "s3://bucket/p", Options{Driver: "gcs", Getenv: func(string) string { return "" }})
	if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), `driver="gcs"`) {
		t.Errorf("bad driver in Options: %v", err)
	}
}
