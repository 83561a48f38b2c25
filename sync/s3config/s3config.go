// Package s3config holds what baton's two S3 drivers (sync/s3aws and
// sync/s3minio) share: the store's settings, how blank settings are filled
// from the standard AWS environment, the TLS settings that honour
// AWS_CA_BUNDLE, and the mapping of S3 error codes and transport failures to
// the error kinds of package storage.
package s3config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strings"
)

// DefaultRegion is the region used when neither the settings nor the
// environment name one.
const DefaultRegion = "us-east-1"

// DefaultMaxConns is the number of idle connections per host a driver keeps
// when Config.MaxConns is zero.
const DefaultMaxConns = 64

// Config describes one S3 store: a bucket, a key prefix inside it, and how to
// reach and authenticate to the server. The zero value of every field but
// Bucket means "use the default or the environment" (see Resolve).
type Config struct {
	// Bucket is the bucket's name. Required.
	Bucket string
	// Prefix is prepended to every key, joined with "/", when not empty. It
	// has no leading or trailing slash. List strips it from the keys it
	// returns.
	Prefix string
	// Endpoint is the URL of a non-AWS server (MinIO, versitygw, R2, Ceph,
	// ...), such as "http://127.0.0.1:9000"; a value without a scheme means
	// https. Empty means AWS itself, found from Region.
	Endpoint string
	// Region is the signing region. Always sent explicitly.
	Region string
	// Profile names the shared-config profile (~/.aws/config and
	// ~/.aws/credentials) to take credentials and settings from. Empty means
	// the default profile.
	Profile string
	// PathStyle addresses buckets as ENDPOINT/BUCKET/KEY rather than
	// BUCKET.ENDPOINT/KEY. Resolve turns it on whenever Endpoint is set,
	// unless VirtualHosted is set.
	PathStyle bool
	// VirtualHosted forces virtual-hosted addressing (BUCKET.ENDPOINT) for a
	// custom Endpoint that supports it; it overrides PathStyle.
	VirtualHosted bool
	// AccessKey, SecretKey and SessionToken are static credentials. When
	// AccessKey is empty the drivers use the provider's credential chain
	// instead (environment, shared profiles, SSO, instance roles, web
	// identity).
	AccessKey, SecretKey, SessionToken string
	// MaxConns is the number of idle connections per host kept for reuse;
	// zero means DefaultMaxConns. Set it to at least the number of
	// concurrent requests.
	MaxConns int
}

// Resolve returns c with its blank fields filled from the standard AWS
// environment, read through getenv (os.Getenv in production):
//
//   - Endpoint from AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL;
//   - Region from AWS_REGION, then AWS_DEFAULT_REGION, else DefaultRegion;
//   - Profile from AWS_PROFILE;
//   - MaxConns defaults to DefaultMaxConns;
//   - PathStyle is turned on when an Endpoint is set, and off whenever
//     VirtualHosted is set.
//
// Prefix loses any leading and trailing slashes. Credentials are not read
// here: each driver's credential chain does that.
func (c Config) Resolve(getenv func(string) string) Config {
	if getenv == nil {
		getenv = os.Getenv
	}
	first := func(v string, names ...string) string {
		for _, n := range names {
			if v != "" {
				return v
			}
			v = getenv(n)
		}
		return v
	}
	c.Endpoint = first(c.Endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	c.Region = first(c.Region, "AWS_REGION", "AWS_DEFAULT_REGION")
	if c.Region == "" {
		c.Region = DefaultRegion
	}
	c.Profile = first(c.Profile, "AWS_PROFILE")
	if c.MaxConns <= 0 {
		c.MaxConns = DefaultMaxConns
	}
	c.Prefix = strings.Trim(c.Prefix, "/")
	switch {
	case c.VirtualHosted:
		c.PathStyle = false
	case c.Endpoint != "":
		c.PathStyle = true
	}
	return c
}

// EndpointURL parses Endpoint; a value without a scheme gets https. It
// returns nil and no error when Endpoint is empty.
func (c Config) EndpointURL() (*url.URL, error) {
	if c.Endpoint == "" {
		return nil, nil
	}
	raw := c.Endpoint
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("S3 endpoint %q: %w", c.Endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("S3 endpoint %q: scheme must be http or https", c.Endpoint)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("S3 endpoint %q: no host", c.Endpoint)
	}
	return u, nil
}

// Key returns the full object key for a store key: Prefix + "/" + key, or
// key alone when Prefix is empty.
func (c Config) Key(key string) string {
	if c.Prefix == "" {
		return key
	}
	return c.Prefix + "/" + key
}

// ListPrefix returns the full prefix to list for a store-relative prefix.
func (c Config) ListPrefix(prefix string) string {
	if c.Prefix == "" {
		return prefix
	}
	return c.Prefix + "/" + prefix
}

// StoreKey turns a full object key back into a store key, reporting false
// when it does not lie under Prefix.
func (c Config) StoreKey(full string) (string, bool) {
	if c.Prefix == "" {
		return full, true
	}
	return strings.CutPrefix(full, c.Prefix+"/")
}

// String names the store as "s3://bucket" or "s3://bucket/prefix"; it never
// contains credentials.
func (c Config) String() string {
	if c.Prefix == "" {
		return "s3://" + c.Bucket
	}
	return "s3://" + c.Bucket + "/" + c.Prefix
}

// TLSConfig returns the TLS settings that honour AWS_CA_BUNDLE, read through
// getenv: the system's root certificates plus every certificate of the PEM
// file the variable names. It returns nil (use Go's defaults) when the
// variable is unset, and an error naming the variable when the file cannot be
// read or holds no certificate.
func TLSConfig(getenv func(string) string) (*tls.Config, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	path := getenv("AWS_CA_BUNDLE")
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("AWS_CA_BUNDLE: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("AWS_CA_BUNDLE=%s: no PEM certificate in the file", path)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
