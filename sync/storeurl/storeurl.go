// Package storeurl opens a sync.Store from the URL a user writes:
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
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	bsync "github.com/batonrun/baton/sync"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/s3minio"
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

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// Open returns the store that raw names.
func Open(ctx context.Context, raw string, opts Options) (bsync.Store, error) {
	if !strings.Contains(raw, "://") {
		if raw == "" {
			return nil, fmt.Errorf("%w: empty", ErrBadURL)
		}
		return file.New(raw)
	}
	u, err := parseURL(raw)
	if err != nil {
		return nil, err
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w %s: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or a profile) instead", ErrBadURL, u.Redacted())
	}
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("%w %s: a file URL needs an absolute path (file:///path)", ErrBadURL, u.Redacted())
		}
		if len(u.Query()) > 0 {
			return nil, fmt.Errorf("%w %s: a file URL takes no parameters", ErrBadURL, u.Redacted())
		}
		return file.New(filepath.Clean(u.Path))
	case "s3":
		cfg, driver, err := s3Config(u, opts)
		if err != nil {
			return nil, err
		}
		if driver == DriverMinio {
			return s3minio.New(ctx, cfg)
		}
		return s3aws.New(ctx, cfg)
	}
	return nil, fmt.Errorf("%w %s: unknown scheme %q (want s3:// or file://)", ErrBadURL, u.Redacted(), u.Scheme)
}

// parseURL parses raw without quoting it in its error: it may hold a secret.
func parseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot parse it as a URL", ErrBadURL)
	}
	return u, nil
}

func s3Config(u *url.URL, opts Options) (s3config.Config, string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrBadURL, u.Redacted(), fmt.Sprintf(format, args...))
	}
	cfg := s3config.Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/"), MaxConns: opts.MaxConns}
	if !bucketName.MatchString(cfg.Bucket) {
		return cfg, "", bad("%q is not a valid bucket name (3-63 lowercase letters, digits, dots, hyphens)", cfg.Bucket)
	}
	if cfg.Prefix != "" {
		if err := bsync.CheckKey(cfg.Prefix); err != nil {
			return cfg, "", bad("prefix %q: %v", cfg.Prefix, errors.Unwrap(err))
		}
	}
	driver := opts.Driver
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "endpoint":
			cfg.Endpoint = v
		case "region":
			cfg.Region = v
		case "profile":
			cfg.Profile = v
		case "driver":
			driver = v
		case "addressing":
			switch v {
			case "path":
				cfg.PathStyle = true
			case "virtual":
				cfg.VirtualHosted = true
			default:
				return cfg, "", bad("addressing=%q: want path or virtual", v)
			}
		default:
			return cfg, "", bad("unknown parameter %q (known: endpoint, region, profile, driver, addressing)", k)
		}
	}
	switch driver {
	case "":
		driver = DefaultDriver
	case DriverAWS, DriverMinio:
	default:
		return cfg, "", bad("driver=%q: want aws or minio", driver)
	}
	cfg = cfg.Resolve(opts.Getenv)
	if _, err := cfg.EndpointURL(); err != nil {
		return cfg, "", bad("endpoint: %v", err)
	}
	return cfg, driver, nil
}
