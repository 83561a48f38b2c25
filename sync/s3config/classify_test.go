package s3config_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/s3minio"
	"github.com/batonrun/baton/sync/storage"
)

// drivers open a store with each S3 driver.
var drivers = map[string]func(context.Context, s3config.Config) (storage.Store, error){
	"aws":   func(ctx context.Context, c s3config.Config) (storage.Store, error) { return s3aws.New(ctx, c) },
	"minio": func(ctx context.Context, c s3config.Config) (storage.Store, error) { return s3minio.New(ctx, c) },
}

// listErr lists the store cfg describes with driver and returns the error.
func listErr(t *testing.T, driver string, cfg s3config.Config) error {
	t.Helper()
	st, err := drivers[driver](t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = st.List(t.Context(), "", func(storage.ObjectInfo) error { return nil })
	if err == nil {
		t.Fatal("list succeeded")
	}
	return err
}

// checkErr fails unless err is of kind, not retryable when kind is not,
// says want, and holds neither a request ID nor "credentials rejected".
func checkErr(t *testing.T, err, kind error, want string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Errorf("error is not %v: %v", kind, err)
	}
	if storage.IsRetryable(err) != storage.IsRetryable(kind) {
		t.Errorf("retryable: %v, want %v: %v", storage.IsRetryable(err), storage.IsRetryable(kind), err)
	}
	msg := err.Error()
	if !strings.Contains(msg, want) {
		t.Errorf("error does not say %q: %s", want, msg)
	}
	for _, bad := range []string{"RequestID", "HostID", "REQID", "HOSTID"} {
		if strings.Contains(msg, bad) {
			t.Errorf("error holds %s: %s", bad, msg)
		}
	}
	if kind != storage.ErrAuth && strings.Contains(msg, "credentials rejected") {
		t.Errorf("error says credentials rejected: %s", msg)
	}
}

// TestAWSRegionAnswers answers every request as AWS documents it answers a
// request signed for the wrong region (400 AuthorizationHeaderMalformed
// naming the region, 301 PermanentRedirect with x-amz-bucket-region), and
// with a malformed header that has nothing to do with the region; with
// both drivers.
func TestAWSRegionAnswers(t *testing.T) {
	cases := []struct {
		name   string
		status int
		header map[string]string
		body   string
		kind   error
		want   string
	}{
		{"AuthorizationHeaderMalformed", 400, nil, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; the region 'us-east-1' is wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region><RequestId>REQID123</RequestId><HostId>HOSTID456</HostId></Error>`,
			storage.ErrWrongRegion, "wrong region: the server expects region eu-west-1, not us-east-1 (set ?region=eu-west-1 or AWS_REGION)"},
		{"PermanentRedirect", 301, map[string]string{"x-amz-bucket-region": "eu-west-1"}, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint. Please send all future requests to this endpoint.</Message><Endpoint>bkt.s3.eu-west-1.amazonaws.com</Endpoint><Bucket>bkt</Bucket><RequestId>REQID123</RequestId><HostId>HOSTID456</HostId></Error>`,
			storage.ErrWrongRegion, "the server expects region eu-west-1, not us-east-1"},
		{"PermanentRedirect without a region", 301, nil, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message><RequestId>REQID123</RequestId><HostId>HOSTID456</HostId></Error>`,
			storage.ErrWrongRegion, "the server does not take region us-east-1 and does not say which it wants"},
		{"malformed, not the region", 400, nil, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AuthorizationHeaderMalformed</Code><Message>The authorization header is malformed; a non-empty Access Key (AKID) must be provided in the credential.</Message><RequestId>REQID123</RequestId><HostId>HOSTID456</HostId></Error>`,
			storage.ErrAuth, "credentials rejected"},
	}
	for _, c := range cases {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range c.header {
				w.Header().Set(k, v)
			}
			w.Header().Set("Content-Type", "application/xml")
			w.Header().Set("x-amz-request-id", "REQID123")
			w.Header().Set("x-amz-id-2", "HOSTID456")
			w.WriteHeader(c.status)
			_, _ = w.Write([]byte(c.body))
		}))
		t.Cleanup(srv.Close)
		for _, driver := range []string{"aws", "minio"} {
			t.Run(c.name+"/"+driver, func(t *testing.T) {
				cfg := s3config.Config{Bucket: "bkt", Endpoint: srv.URL, Region: "us-east-1", PathStyle: true,
					AccessKey: "AKIDEXAMPLE", SecretKey: "secret", MaxConns: 4}
				checkErr(t, listErr(t, driver, cfg), c.kind, c.want)
			})
		}
	}
}

// TestRealServersNameTheCause signs for another region than the real
// server's, points an https:// endpoint at its plain HTTP port, and asks for
// a bucket it does not have: each error names its cause in one try, with no
// request ID.
func TestRealServersNameTheCause(t *testing.T) {
	for _, kind := range s3test.Kinds() {
		srv := s3test.Start(t, kind)
		bucket := srv.NewBucket(t)
		for _, driver := range []string{"aws", "minio"} {
			t.Run(kind+"/"+driver+"/region", func(t *testing.T) {
				cfg := srv.Config(bucket, "")
				cfg.Region = "eu-west-1"
				checkErr(t, listErr(t, driver, cfg), storage.ErrWrongRegion,
					"wrong region: the server expects region "+srv.Region+", not eu-west-1")
			})
			t.Run(kind+"/"+driver+"/https to http", func(t *testing.T) {
				cfg := srv.Config(bucket, "")
				cfg.Endpoint = strings.Replace(cfg.Endpoint, "http://", "https://", 1)
				st, err := drivers[driver](t.Context(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				var tries atomic.Int32
				r := storage.DefaultRetry()
				err = r.Do(t.Context(), func(ctx context.Context) error {
					tries.Add(1)
					return st.List(ctx, "", func(storage.ObjectInfo) error { return nil })
				})
				if n := tries.Load(); n != 1 {
					t.Errorf("%d tries, want 1", n)
				}
				checkErr(t, err, storage.ErrTLSMismatch, "TLS mismatch: the endpoint does not speak TLS (is it http://?)")
			})
			t.Run(kind+"/"+driver+"/no bucket", func(t *testing.T) {
				checkErr(t, listErr(t, driver, srv.Config("no-such-bucket", "")), storage.ErrNoBucket, "bucket does not exist")
			})
		}
	}
}

// TestHTTPToTLSPort points an http:// endpoint at MinIO serving TLS: Go's
// server answers "Client sent an HTTP request to an HTTPS server", which
// the minio driver reads from a listing's body. (The aws driver gets the
// connection cut before it reads that body, and versitygw cuts it at once:
// those stay what they were.)
func TestHTTPToTLSPort(t *testing.T) {
	srv := s3test.Start(t, s3test.MinIO, s3test.TLS())
	cfg := srv.Config("bkt", "")
	cfg.Endpoint = strings.Replace(cfg.Endpoint, "https://", "http://", 1)
	checkErr(t, listErr(t, "minio", cfg), storage.ErrTLSMismatch, "TLS mismatch: the endpoint speaks TLS (is it https://?)")
}
