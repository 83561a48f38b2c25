// Package storeurl opens a storage.Store from the URL a user writes:
//
//	file:///abs/path            a local directory, NFS mount or network volume
//	/abs/path, ./rel/path       the same, written as a plain path
//	s3://bucket[/prefix][?k=v]  an S3 bucket, on AWS or any S3-compatible server
//
// S3 URL parameters (each may also come from the environment, see Options):
//
//	endpoint=URL        a non-AWS server, e.g. http://127.0.0.1:9000 (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)
//	region=NAME         signing region (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)
//	profile=NAME        shared-config profile (default: AWS_PROFILE)
//	driver=aws|minio    the S3 client library (default: DefaultDriver)
//	addressing=path|virtual  bucket addressing (default: path with an endpoint, virtual on AWS)
//
// Check finds every problem of a URL alone (scheme, bucket name, prefix,
// an unknown parameter or value) without opening anything, so that a
// command can refuse a bad URL before it does anything else; Open finds the
// same problems the same way.
//
// Credentials never go in the URL; the drivers take them from the standard
// AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, SSO, instance
// roles, web identity).
//
// It is a package of its own because it imports every driver, and the drivers
// import sync.
package storeurl

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/batonrun/baton/internal/redact"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/s3minio"
	"github.com/batonrun/baton/sync/storage"
)

// The S3 drivers.
const (
	DriverAWS   = "aws"
	DriverMinio = "minio"
	// DefaultDriver is the driver used when neither the URL nor Options
	// names one; scripts/bench-sync.sh measured it (see docs/storage.md).
	DefaultDriver = DriverAWS
)

// ErrBadURL is wrapped by every error about the URL itself (as opposed to the
// store it names), so a CLI can tell a usage error from a storage one.
var ErrBadURL = errors.New("bad store URL")

// Options are settings from outside the URL; a URL parameter wins over them.
type Options struct {
	// Driver picks the S3 driver when the URL has no driver parameter.
	Driver string
	// Getenv reads the environment (default os.Getenv through s3config).
	Getenv func(string) string
	// MaxConns is passed to the S3 drivers' connection pools.
	MaxConns int
}

// URLError is a problem with a store URL itself, as opposed to the store
// it names: found by Check (and Open) without opening anything. It wraps
// ErrBadURL.
type URLError struct {
	// URL is the URL with the credentials of every URL in it (the store's,
	// an endpoint's) masked; empty when it is empty or does not parse.
	URL string
	// Problem says what is wrong, without the URL, e.g. `unknown parameter
	// "foo" (known: endpoint, region, profile, driver, addressing)`. It
	// never holds a credential.
	Problem string
}

// Error writes "bad store URL URL: PROBLEM".
func (e *URLError) Error() string {
	if e.URL == "" {
		return ErrBadURL.Error() + ": " + e.Problem
	}
	return ErrBadURL.Error() + " " + e.URL + ": " + e.Problem
}

// Unwrap returns ErrBadURL.
func (e *URLError) Unwrap() error { return ErrBadURL }

// Params are the parameters an s3:// URL may carry, in the order the
// documentation lists them.
func Params() []string { return []string{"endpoint", "region", "profile", "driver", "addressing"} }

// Check reports what is wrong with raw as a store URL, reading nothing but
// raw: the scheme (s3://, file:// or a plain path), credentials in the URL,
// the bucket name (S3's rules), the prefix, and every parameter and its
// value. It does not look at the environment (an endpoint from
// AWS_ENDPOINT_URL_S3 is Open's to check) or at the store. A problem is a
// *URLError; Open reports the same problems the same way.
func Check(raw string) error {
	_, err := parse(raw)
	return err
}

// location is a parsed store URL.
type location struct {
	path   string          // a file store's directory; "" for S3
	s3     s3config.Config // Bucket, Prefix and the URL's parameters
	driver string          // the URL's driver parameter, or ""
}

// parse checks and splits raw; see Check.
func parse(raw string) (location, error) {
	if !strings.Contains(raw, "://") {
		if strings.TrimSpace(raw) == "" {
			return location{}, &URLError{Problem: "empty"}
		}
		if strings.HasPrefix(raw, "s3:") {
			return location{}, &URLError{Problem: "want s3://bucket/prefix (two slashes)"}
		}
		return location{path: raw}, nil
	}
	u, err := url.Parse(raw)
	if err != nil { // its message would quote raw, which may hold a secret
		return location{}, &URLError{Problem: "cannot parse it as a URL"}
	}
	bad := func(format string, args ...any) error {
		return &URLError{URL: redact.URLs(raw), Problem: fmt.Sprintf(format, args...)}
	}
	if u.User != nil {
		return location{}, bad("credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile) instead")
	}
	if u.Fragment != "" || strings.HasSuffix(raw, "#") {
		return location{}, bad("a store URL has no #fragment (write a # in a prefix as %%23)")
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return location{}, bad("a file URL needs an absolute path: file:///absolute/path (three slashes)")
		}
		if u.Path == "" {
			return location{}, bad("no path; want file:///absolute/path")
		}
		if u.RawQuery != "" {
			return location{}, bad("a file URL takes no parameters")
		}
		return location{path: filepath.Clean(u.Path)}, nil
	case "s3":
		return parseS3(u, bad)
	}
	return location{}, bad("unknown scheme %q: want s3://bucket/prefix, file:///path or a path", u.Scheme)
}

// parseS3 checks the bucket, prefix and parameters of an s3:// URL.
func parseS3(u *url.URL, bad func(string, ...any) error) (location, error) {
	loc := location{s3: s3config.Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}}
	if u.Host == "" {
		return loc, bad("no bucket; want s3://bucket/prefix")
	}
	if p := BucketProblem(u.Host); p != "" {
		return loc, bad("%q is not a valid bucket name: %s", u.Host, p)
	}
	if loc.s3.Prefix != "" {
		if err := storage.CheckKey(loc.s3.Prefix); err != nil {
			return loc, bad("prefix %q: %v", loc.s3.Prefix, errors.Unwrap(err))
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return loc, bad("the parameters after ? do not parse")
	}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		v := q[k][len(q[k])-1]
		switch k {
		case "endpoint":
			if p := endpointProblem(v); p != "" {
				return loc, bad("endpoint: %s", p)
			}
			loc.s3.Endpoint = v
		case "region":
			loc.s3.Region = v
		case "profile":
			loc.s3.Profile = v
		case "driver":
			if v != DriverAWS && v != DriverMinio {
				return loc, bad("driver=%q: want aws or minio", v)
			}
			loc.driver = v
		case "addressing":
			switch v {
			case "path":
				loc.s3.PathStyle = true
			case "virtual":
				loc.s3.VirtualHosted = true
			default:
				return loc, bad("addressing=%q: want path or virtual", v)
			}
		default:
			return loc, bad("unknown parameter %q (known: %s)", k, strings.Join(Params(), ", "))
		}
	}
	return loc, nil
}

// endpointProblem returns what is wrong with an endpoint parameter, or "";
// the message never quotes the endpoint, which may hold a credential.
func endpointProblem(v string) string {
	if v == "" {
		return "empty"
	}
	raw := v
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return "cannot parse it as a URL"
	case u.User != nil:
		return "credentials do not belong in the URL"
	case u.Scheme != "http" && u.Scheme != "https":
		return "want http:// or https://"
	case u.Host == "":
		return "no host"
	}
	return ""
}

// bucketName is S3's rule for the characters and length of a bucket name
// (general purpose buckets): 3 to 63 lowercase letters, digits, dots and
// hyphens, beginning and ending with a letter or digit.
var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// BucketProblem returns what is wrong with name as an S3 bucket name, or
// "": S3's naming rules for general purpose buckets, which S3-compatible
// servers follow (3 to 63 lowercase letters, digits, dots and hyphens,
// beginning and ending with a letter or digit, no two dots in a row, not
// an IP address).
func BucketProblem(name string) string {
	switch {
	case !bucketName.MatchString(name):
		return "want 3 to 63 lowercase letters, digits, dots and hyphens, beginning and ending with a letter or digit"
	case strings.Contains(name, ".."):
		return "two dots in a row"
	case net.ParseIP(name) != nil:
		return "it is an IP address"
	}
	return ""
}

// Open returns the store that raw names.
func Open(ctx context.Context, raw string, opts Options) (storage.Store, error) {
	loc, err := parse(raw)
	if err != nil {
		return nil, err
	}
	if loc.path != "" {
		return file.New(loc.path)
	}
	cfg, driver, err := s3Config(raw, loc, opts)
	if err != nil {
		return nil, err
	}
	if driver == DriverMinio {
		return s3minio.New(ctx, cfg)
	}
	return s3aws.New(ctx, cfg)
}

// s3Config completes the S3 settings of loc from opts and the environment.
func s3Config(raw string, loc location, opts Options) (s3config.Config, string, error) {
	cfg := loc.s3
	cfg.MaxConns = opts.MaxConns
	driver := loc.driver
	if driver == "" {
		driver = opts.Driver
	}
	switch driver {
	case "":
		driver = DefaultDriver
	case DriverAWS, DriverMinio:
	default:
		return cfg, "", &URLError{URL: redact.URLs(raw), Problem: fmt.Sprintf("driver=%q: want aws or minio", driver)}
	}
	cfg = cfg.Resolve(opts.Getenv)
	if _, err := cfg.EndpointURL(); err != nil {
		return cfg, "", &URLError{URL: redact.URLs(raw), Problem: "endpoint (from the environment): " + redact.URLs(err.Error())}
	}
	return cfg, driver, nil
}
