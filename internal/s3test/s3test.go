// Package s3test runs real S3 servers for tests: versitygw (a gateway over
// a POSIX directory) and MinIO, each on a free port of 127.0.0.1 with its
// data in a temporary directory and fresh random credentials. No mocks: the
// point is to test the drivers against what they will meet.
//
// The binaries come from scripts/install-test-servers.sh. When one is
// missing the test is skipped, unless BATON_REQUIRE_ALL=1 (set in CI, see
// internal/testenv), which turns the skip into a failure so a missing server
// never passes silently.
package s3test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/batonrun/baton/internal/testenv"
	"github.com/batonrun/baton/sync/s3config"
)

// The kinds of server Start runs.
const (
	Versitygw = "versitygw"
	MinIO     = "minio"
)

// Kinds lists every kind of server Start runs, for tests that loop over
// them.
func Kinds() []string { return []string{Versitygw, MinIO} }

// Region is the region every test server is started with.
const Region = "us-east-1"

// startTimeout bounds how long a server may take to answer after it starts.
const startTimeout = 60 * time.Second

// Server is one running S3 server.
type Server struct {
	// Kind is "versitygw" or "minio".
	Kind string
	// Endpoint is the server's URL, "http://127.0.0.1:PORT".
	Endpoint string
	// Region is the region the server signs with.
	Region string
	// AccessKey and SecretKey are the root credentials, random per server.
	AccessKey, SecretKey string
	// CAFile is, for a server started with TLS, the PEM file of the CA that
	// signed its certificate (for AWS_CA_BUNDLE); empty otherwise.
	CAFile string

	rootCAs *x509.CertPool
	bin     string
}

// Option changes how Start runs a server.
type Option func(*options)

type options struct {
	tls   bool
	users bool
}

// Users runs versitygw with its internal IAM service, so that NewUser can
// add accounts besides root. MinIO ignores it.
func Users() Option { return func(o *options) { o.users = true } }

// TLS serves HTTPS with a certificate for 127.0.0.1 signed by a fresh CA,
// whose PEM file is Server.CAFile.
func TLS() Option { return func(o *options) { o.tls = true } }

// Start starts a server of the given kind ("versitygw" or "minio") for the
// duration of the test, waits until it answers, and stops it (SIGTERM, then
// SIGKILL) when the test ends. The server's log is printed if the test
// fails. A missing binary skips the test, or fails it when BATON_REQUIRE_ALL=1
// (internal/testenv).
func Start(t testing.TB, kind string, opts ...Option) *Server {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	bin, err := Binary(kind)
	if err != nil {
		testenv.Unavailable(t, "%v; run scripts/install-test-servers.sh to install it", err)
	}
	srv := &Server{Kind: kind, Region: Region, AccessKey: randomHex(t, 10), SecretKey: randomHex(t, 20), bin: bin}
	dataDir := t.TempDir()
	logDir := t.TempDir()
	port := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv.Endpoint = "http://" + addr
	var certFile, keyFile string
	if o.tls {
		srv.Endpoint = "https://" + addr
		srv.CAFile, certFile, keyFile, srv.rootCAs = makeCerts(t, logDir)
	}

	var args, env []string
	readyPath := "/"
	switch kind {
	case Versitygw:
		// Credentials go through the environment, not the command line.
		args = []string{"--port", addr, "--region", Region, "--quiet"}
		if o.tls {
			args = append(args, "--cert", certFile, "--key", keyFile)
		}
		if o.users {
			args = append(args, "--iam-dir", t.TempDir())
		}
		args = append(args, "posix", dataDir)
		env = []string{"ROOT_ACCESS_KEY_ID=" + srv.AccessKey, "ROOT_SECRET_ACCESS_KEY=" + srv.SecretKey}
	case MinIO:
		console := "127.0.0.1:" + strconv.Itoa(freePort(t))
		args = []string{"server", "--quiet", "--address", addr, "--console-address", console}
		if o.tls {
			args = append(args, "--certs-dir", filepath.Dir(certFile)) // public.crt, private.key
		}
		args = append(args, dataDir)
		env = []string{
			"MINIO_ROOT_USER=" + srv.AccessKey, "MINIO_ROOT_PASSWORD=" + srv.SecretKey,
			"MINIO_REGION=" + Region, "MINIO_BROWSER=off", "MINIO_UPDATE=off",
		}
		readyPath = "/minio/health/ready"
	default:
		t.Fatalf("s3test: unknown server kind %q", kind)
	}

	logPath := filepath.Join(logDir, kind+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Env = append(cmd.Env, "HOME="+logDir) // keep MinIO's ~/.minio out of the real home
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("s3test: starting %s: %v", kind, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	var stopOnce sync.Once
	stop := func() {
		stopOnce.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				_ = cmd.Process.Kill()
				<-exited
			}
			logFile.Close()
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("%s log (%s %s):\n%s", kind, bin, strings.Join(args, " "), readLog(logPath))
		}
	})

	if err := waitReady(srv.httpClient(), srv.Endpoint+readyPath, exited); err != nil {
		stop()
		select {
		case <-exited:
			err = fmt.Errorf("%w (%v)", err, waitErr)
		default:
		}
		t.Fatalf("s3test: %s did not start: %v\n%s", kind, err, readLog(logPath))
	}
	return srv
}

// Binary returns the path of the server binary of the given kind:
// $BATON_TOOLS/bin/KIND, else ~/.cache/baton-tools/bin/KIND, else KIND on
// PATH.
func Binary(kind string) (string, error) {
	var dirs []string
	if d := os.Getenv("BATON_TOOLS"); d != "" {
		dirs = append(dirs, filepath.Join(d, "bin"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "baton-tools", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, kind)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(kind); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("s3test: no %s binary in %s or on PATH", kind, strings.Join(dirs, ", "))
}

// NewBucket creates a bucket with a unique name on the server and returns
// the name. The bucket goes away with the server's data directory.
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := "baton-" + strings.ToLower(randomHex(t, 8))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := s.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("s3test: creating bucket %s on %s: %v", name, s.Kind, err)
	}
	return name
}

// Client returns a plain aws-sdk-go-v2 client for the server with its root
// credentials, for setting up and inspecting test state.
func (s *Server) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       s.Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(s.AccessKey, s.SecretKey, ""),
		HTTPClient:   s.httpClient(),
		// The default CRC32 checksums are fine with both servers, but keep
		// them off as the drivers do for non-AWS endpoints.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
}

// httpClient returns a client that trusts the server's certificate, if it
// has one.
func (s *Server) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if s.rootCAs != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: s.rootCAs, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// Config returns the settings of a store on bucket and prefix of the server,
// with its root credentials.
func (s *Server) Config(bucket, prefix string) s3config.Config {
	return s3config.Config{
		Bucket:    bucket,
		Prefix:    prefix,
		Endpoint:  s.Endpoint,
		Region:    s.Region,
		PathStyle: true,
		AccessKey: s.AccessKey,
		SecretKey: s.SecretKey,
		MaxConns:  16,
	}
}

// waitReady polls url until the server answers with any HTTP response
// (versitygw) or 200 (MinIO's readiness probe), the process exits, or
// startTimeout passes.
func waitReady(client *http.Client, url string, exited <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	delay := 20 * time.Millisecond
	var last error
	for time.Now().Before(deadline) {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if !strings.Contains(url, "/minio/health/") || resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errors.New("the server exited")
		case <-time.After(delay):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
	return fmt.Errorf("no answer within %v: %v", startTimeout, last)
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("s3test: finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func randomHex(t testing.TB, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return hex.EncodeToString(b)
}

// cleanEnv is the environment without the variables the servers read their
// settings from, so that the caller's environment cannot change them.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "VGW_") || strings.HasPrefix(name, "MINIO_") ||
			strings.HasPrefix(name, "ROOT_") || name == "LOGFILE" || name == "WEBHOOK" || name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func readLog(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	const max = 64 << 10
	if len(b) > max {
		b = append([]byte("...\n"), b[len(b)-max:]...)
	}
	return string(bytes.TrimSpace(b))
}

// makeCerts writes, under dir, a fresh CA (ca.pem) and a certificate for
// 127.0.0.1 and localhost signed by it (certs/public.crt and
// certs/private.key, the names MinIO looks for).
func makeCerts(t testing.TB, dir string) (caFile, certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	fail := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("s3test: making certificates: %v", err)
		}
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		fail(err)
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "baton s3test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	fail(err)
	ca, err := x509.ParseCertificate(caDER)
	fail(err)
	leafKey := newKey()
	leafTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, ca, &leafKey.PublicKey, caKey)
	fail(err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leafKey)
	fail(err)

	certsDir := filepath.Join(dir, "certs")
	fail(os.MkdirAll(certsDir, 0o700))
	caFile = filepath.Join(dir, "ca.pem")
	certFile = filepath.Join(certsDir, "public.crt")
	keyFile = filepath.Join(certsDir, "private.key")
	fail(os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600))
	fail(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600))
	fail(os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600))
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return caFile, certFile, keyFile, pool
}

// NewUser adds an account with the plain "user" role to a versitygw server
// started with Users, and returns its credentials. Such a user owns nothing:
// any request on another account's bucket is denied.
func (s *Server) NewUser(t testing.TB) (accessKey, secretKey string) {
	t.Helper()
	if s.Kind != Versitygw {
		t.Fatalf("s3test: NewUser needs versitygw, not %s", s.Kind)
	}
	accessKey, secretKey = randomHex(t, 10), randomHex(t, 20)
	cmd := exec.Command(s.bin, "admin", "--endpoint-url", s.Endpoint, "--region", s.Region,
		"create-user", "--access", accessKey, "--secret", secretKey, "--role", "user")
	cmd.Env = append(cleanEnv(), "ADMIN_ACCESS_KEY_ID="+s.AccessKey, "ADMIN_SECRET_ACCESS_KEY="+s.SecretKey)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("s3test: creating a user: %v\n%s", err, out)
	}
	return accessKey, secretKey
}
