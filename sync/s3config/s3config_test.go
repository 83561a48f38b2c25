package s3config

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/iotest"
	"time"

	"github.com/batonrun/baton/sync/storage"
)

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestResolve(t *testing.T) {
	for _, c := range []struct {
		name string
		in   Config
		env  func(string) string
		want Config
	}{
		{"defaults", Config{Bucket: "b"}, env(),
			Config{Bucket: "b", Region: "us-east-1", MaxConns: DefaultMaxConns}},
		{"env endpoint s3 first", Config{Bucket: "b"},
			env("AWS_ENDPOINT_URL_S3", "http://s3:9000", "AWS_ENDPOINT_URL", "http://all:1", "AWS_REGION", "eu-west-1", "AWS_DEFAULT_REGION", "x", "AWS_PROFILE", "p"),
			Config{Bucket: "b", Endpoint: "http://s3:9000", Region: "eu-west-1", Profile: "p", PathStyle: true, MaxConns: DefaultMaxConns}},
		{"env generic endpoint, default region", Config{Bucket: "b"},
			env("AWS_ENDPOINT_URL", "http://all:1", "AWS_DEFAULT_REGION", "auto"),
			Config{Bucket: "b", Endpoint: "http://all:1", Region: "auto", PathStyle: true, MaxConns: DefaultMaxConns}},
		{"explicit wins", Config{Bucket: "b", Endpoint: "https://x", Region: "r", Profile: "q", MaxConns: 8},
			env("AWS_ENDPOINT_URL_S3", "http://s3:9000", "AWS_REGION", "eu-west-1", "AWS_PROFILE", "p"),
			Config{Bucket: "b", Endpoint: "https://x", Region: "r", Profile: "q", PathStyle: true, MaxConns: 8}},
		{"virtual hosted custom endpoint", Config{Bucket: "b", Endpoint: "https://x", PathStyle: true, VirtualHosted: true}, env(),
			Config{Bucket: "b", Endpoint: "https://x", Region: "us-east-1", VirtualHosted: true, MaxConns: DefaultMaxConns}},
		{"path style on AWS", Config{Bucket: "b", PathStyle: true}, env(),
			Config{Bucket: "b", Region: "us-east-1", PathStyle: true, MaxConns: DefaultMaxConns}},
		{"prefix slashes", Config{Bucket: "b", Prefix: "/a/b/"}, env(),
			Config{Bucket: "b", Prefix: "a/b", Region: "us-east-1", MaxConns: DefaultMaxConns}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.in.Resolve(c.env); got != c.want {
				t.Errorf("Resolve =\n%+v, want\n%+v", got, c.want)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	c := Config{Bucket: "b", Prefix: "p/q"}
	if got := c.Key("k/1"); got != "p/q/k/1" {
		t.Errorf("Key = %q", got)
	}
	if got := c.ListPrefix(""); got != "p/q/" {
		t.Errorf("ListPrefix = %q", got)
	}
	if k, ok := c.StoreKey("p/q/k/1"); !ok || k != "k/1" {
		t.Errorf("StoreKey = %q, %v", k, ok)
	}
	if _, ok := c.StoreKey("p/qx"); ok {
		t.Error("StoreKey accepted a key outside the prefix")
	}
	if c.String() != "s3://b/p/q" || (Config{Bucket: "b", SecretKey: "s"}).String() != "s3://b" {
		t.Errorf("String = %q", c.String())
	}
	if k, _ := (Config{}).StoreKey("x"); k != "x" || (Config{}).Key("x") != "x" {
		t.Error("empty prefix changed the key")
	}
}

func TestEndpointURL(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"http://127.0.0.1:9000": "http://127.0.0.1:9000",
		"minio.local:9000":      "https://minio.local:9000",
		"ftp://x":               "error",
		"http://":               "error",
	} {
		u, err := Config{Endpoint: in}.EndpointURL()
		got := "error"
		switch {
		case err == nil && u == nil:
			got = ""
		case err == nil:
			got = u.String()
		}
		if got != want {
			t.Errorf("EndpointURL(%q) = %q (%v), want %q", in, got, err, want)
		}
	}
}

func TestKind(t *testing.T) {
	for _, c := range []struct {
		code   string
		status int
		want   error
	}{
		{"NoSuchKey", 404, storage.ErrNotFound},
		{"NotFound", 404, storage.ErrNotFound},
		{"", 404, storage.ErrNotFound},
		{"NoSuchUpload", 404, storage.ErrNotFound},
		{"NoSuchBucket", 404, storage.ErrNoBucket},
		{"PreconditionFailed", 412, storage.ErrPreconditionFailed},
		{"", 412, storage.ErrPreconditionFailed},
		{"ConditionalRequestConflict", 409, storage.ErrPreconditionFailed},
		{"OperationAborted", 409, storage.ErrTransient},
		{"InvalidAccessKeyId", 403, storage.ErrAuth},
		{"SignatureDoesNotMatch", 403, storage.ErrAuth},
		{"ExpiredToken", 400, storage.ErrAuth},
		{"InvalidToken", 400, storage.ErrAuth},
		{"AuthorizationHeaderMalformed", 400, storage.ErrAuth},
		{"XAdminUserNotFound", 404, storage.ErrAuth},
		{"", 401, storage.ErrAuth},
		{"AccessDenied", 403, storage.ErrPermission},
		{"Forbidden", 403, storage.ErrPermission},
		{"", 403, storage.ErrPermission},
		{"SlowDown", 503, storage.ErrTransient},
		{"SlowDown", 0, storage.ErrTransient},
		{"InternalError", 500, storage.ErrTransient},
		{"ServiceUnavailable", 503, storage.ErrTransient},
		{"RequestTimeout", 400, storage.ErrTransient},
		{"UnknownError", 502, storage.ErrTransient},
		{"", 429, storage.ErrTransient},
		{"", 408, storage.ErrTransient},
		{"NotImplemented", 501, storage.ErrInvalid},
		{"", 501, storage.ErrInvalid},
		{"InvalidRange", 416, storage.ErrInvalid},
		{"InvalidPart", 400, storage.ErrInvalid},
		{"EntityTooSmall", 400, storage.ErrInvalid},
		{"WhoKnows", 400, storage.ErrInvalid},
		{"", 0, storage.ErrInvalid},
	} {
		if got := Kind(c.code, c.status); got != c.want {
			t.Errorf("Kind(%q, %d) = %v, want %v", c.code, c.status, got, c.want)
		}
	}
}

func TestNetKind(t *testing.T) {
	if NetKind(nil) != nil {
		t.Error("NetKind(nil) != nil")
	}
	_, refused := net.DialTimeout("tcp", "127.0.0.1:1", time.Second)
	if refused == nil {
		t.Fatal("something listens on 127.0.0.1:1")
	}
	for _, c := range []struct {
		name string
		err  error
		want error
	}{
		{"refused", refused, storage.ErrUnreachable},
		{"no such host", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x.invalid", IsNotFound: true}}, storage.ErrUnreachable},
		{"dns alone", &net.DNSError{Err: "server misbehaving", Name: "x"}, storage.ErrUnreachable},
		{"dial timeout", &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, storage.ErrUnreachable},
		{"unreachable net", errors.Join(errors.New("send"), syscall.ENETUNREACH), storage.ErrUnreachable},
		{"unknown CA", x509.UnknownAuthorityError{}, storage.ErrUnreachable},
		{"reset", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, storage.ErrTransient},
		{"unexpected EOF", io.ErrUnexpectedEOF, storage.ErrTransient},
		{"read timeout", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, storage.ErrTransient},
		{"other", errors.New("http2: stream closed"), storage.ErrTransient},
	} {
		if got := NetKind(c.err); got != c.want {
			t.Errorf("%s: NetKind(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}

func TestBody(t *testing.T) {
	ctx := t.Context()
	read := func(r io.Reader) (string, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	}
	if got, err := read(Body(ctx, "k", io.NopCloser(strings.NewReader("hello")), 5)); got != "hello" || err != nil {
		t.Errorf("whole body: %q, %v", got, err)
	}
	if got, err := read(Body(ctx, "k", io.NopCloser(strings.NewReader("hello world")), 5)); got != "hello" || err != nil {
		t.Errorf("longer body: %q, %v", got, err)
	}
	if got, err := read(Body(ctx, "k", io.NopCloser(strings.NewReader("hello")), -1)); got != "hello" || err != nil {
		t.Errorf("unknown length: %q, %v", got, err)
	}
	got, err := read(Body(ctx, "k", io.NopCloser(strings.NewReader("hel")), 5))
	var se *storage.Error
	if got != "hel" || !errors.Is(err, storage.ErrTransient) || !errors.Is(err, io.ErrUnexpectedEOF) || !errors.As(err, &se) || se.Op != "get" || se.Key != "k" {
		t.Errorf("short body: %q, %v", got, err)
	}
	boom := errors.New("connection reset")
	got, err = read(Body(ctx, "k", io.NopCloser(io.MultiReader(strings.NewReader("he"), iotest.ErrReader(boom))), 5))
	if got != "he" || !errors.Is(err, storage.ErrTransient) || !errors.Is(err, boom) {
		t.Errorf("failing body: %q, %v", got, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = read(Body(cctx, "k", io.NopCloser(iotest.ErrReader(boom)), 5))
	if !errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrTransient) {
		t.Errorf("body after cancel: %v", err)
	}
}

func TestHelpers(t *testing.T) {
	for in, want := range map[string]string{`"abc"`: "abc", "abc": "abc", `W/"abc"`: "abc", `"abc-2"`: "abc-2"} {
		if got := ETag(in); got != want {
			t.Errorf("ETag(%s) = %s", in, got)
		}
	}
	if QuoteETag("abc") != `"abc"` || QuoteETag(`"abc"`) != `"abc"` {
		t.Error("QuoteETag")
	}
	for _, c := range []struct {
		off, n int64
		want   string
	}{{0, -1, ""}, {5, -1, "bytes=5-"}, {0, 1, "bytes=0-0"}, {10, 5, "bytes=10-14"}} {
		if got := RangeHeader(c.off, c.n); got != c.want {
			t.Errorf("RangeHeader(%d, %d) = %q, want %q", c.off, c.n, got, c.want)
		}
	}
	for in, want := range map[string]int64{"bytes 0-9/1234": 1234, "bytes */55": 55, "bytes 0-9/*": -1, "": -1, "bytes 0-9/x": -1} {
		got, ok := TotalSize(in)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("TotalSize(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	if c, err := TLSConfig(env()); c != nil || err != nil {
		t.Errorf("unset: %v, %v", c, err)
	}
	dir := t.TempDir()
	if _, err := TLSConfig(env("AWS_CA_BUNDLE", filepath.Join(dir, "missing.pem"))); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
		t.Errorf("missing file: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	os.WriteFile(junk, []byte("not a certificate"), 0o600)
	if _, err := TLSConfig(env("AWS_CA_BUNDLE", junk)); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
		t.Errorf("junk file: %v", err)
	}
	good := filepath.Join(dir, "ca.pem")
	os.WriteFile(good, selfSigned(t), 0o600)
	c, err := TLSConfig(env("AWS_CA_BUNDLE", good))
	if err != nil || c == nil || c.RootCAs == nil {
		t.Fatalf("good bundle: %v, %v", c, err)
	}
	// The machine's own AWS_CA_BUNDLE, if any, must load.
	if _, err := TLSConfig(os.Getenv); err != nil {
		t.Errorf("this machine's AWS_CA_BUNDLE: %v", err)
	}
}

func selfSigned(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
