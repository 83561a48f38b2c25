package s3test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storetest"
)

// NewStoreFunc opens a driver's store for the given settings: a driver's
// New, as it is.
type NewStoreFunc[S storage.Store] func(ctx context.Context, cfg s3config.Config) (S, error)

// Driver runs every check an S3 driver passes against real servers: the
// shared Store suite (Conformance), the S3-specific checks on each kind of
// server (Smoke), and AWS_CA_BUNDLE over HTTPS (SmokeTLS). A driver's test
// hands it the driver's New and nothing else:
//
//	func TestDriver(t *testing.T) { s3test.Driver(t, s3aws.New) }
//
// SmokeTLS changes the environment, so the test must not run in parallel.
func Driver[S storage.Store](t *testing.T, open NewStoreFunc[S]) {
	t.Run("Conformance", func(t *testing.T) { Conformance(t, open) })
	t.Run("Smoke", func(t *testing.T) {
		for _, kind := range Kinds() {
			t.Run(kind, func(t *testing.T) { Smoke(t, kind, open) })
		}
	})
	t.Run("TLS", func(t *testing.T) { SmokeTLS(t, Versitygw, open) })
}

// Conformance runs the shared Store suite, sync/storetest, against each
// real server, one fresh bucket per subtest, with a key prefix so that
// prefix handling is exercised too.
func Conformance[S storage.Store](t *testing.T, open NewStoreFunc[S]) {
	for _, kind := range Kinds() {
		t.Run(kind, func(t *testing.T) {
			srv := Start(t, kind)
			storetest.Run(t, func(t *testing.T) storage.Store {
				st, err := open(t.Context(), srv.Config(srv.NewBucket(t), "conformance"))
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}

// Smoke runs quick checks of the S3-specific behaviour of a driver against
// a real server of the given kind: the basic operations through a key
// prefix, conditional writes (with a race), multipart uploads, and the error
// kinds for wrong credentials, a missing bucket and an unreachable endpoint.
// It complements the driver-independent conformance suite, sync/storetest.
func Smoke[S storage.Store](t *testing.T, kind string, open NewStoreFunc[S]) {
	srv := Start(t, kind)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	mustOpen := func(t *testing.T, cfg s3config.Config) storage.Store {
		t.Helper()
		st, err := open(ctx, cfg)
		if err != nil {
			t.Fatalf("opening %s: %v", cfg, err)
		}
		return st
	}
	bucket := srv.NewBucket(t)
	st := mustOpen(t, srv.Config(bucket, "pfx"))

	t.Run("basic", func(t *testing.T) {
		data := []byte("hello, object storage")
		put, err := st.Put(ctx, "a/b.txt", storage.BytesPayload(data), storage.PutOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if put.ETag == "" || put.Size != int64(len(data)) || put.Key != "a/b.txt" {
			t.Errorf("put info %+v", put)
		}
		info, err := st.Stat(ctx, "a/b.txt")
		if err != nil {
			t.Fatal(err)
		}
		if info.ETag != put.ETag || info.Size != int64(len(data)) || info.LastModified.IsZero() {
			t.Errorf("stat %+v, put %+v", info, put)
		}
		for _, c := range []struct {
			off, n int64
			want   string
		}{
			{0, -1, string(data)}, {7, -1, string(data[7:])}, {7, 6, "object"}, {0, 0, ""},
			{int64(len(data)), -1, ""}, {int64(len(data)), 0, ""}, {20, 100, string(data[20:])},
		} {
			rc, gi, err := st.Get(ctx, "a/b.txt", c.off, c.n)
			if err != nil {
				t.Errorf("get(%d, %d): %v", c.off, c.n, err)
				continue
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || string(got) != c.want {
				t.Errorf("get(%d, %d) = %q, %v; want %q", c.off, c.n, got, err, c.want)
			}
			if gi.Size != int64(len(data)) || gi.ETag != put.ETag {
				t.Errorf("get(%d, %d) info %+v", c.off, c.n, gi)
			}
		}
		if _, _, err := st.Get(ctx, "a/b.txt", int64(len(data))+1, -1); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("get past the end: %v, want ErrInvalid", err)
		}
		if _, _, err := st.Get(ctx, "a/missing", 0, -1); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get missing: %v, want ErrNotFound", err)
		}
		if _, _, err := st.Get(ctx, "a/missing", 3, 4); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("get range of missing: %v, want ErrNotFound", err)
		}
		if _, err := st.Stat(ctx, "a/missing"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("stat missing: %v, want ErrNotFound", err)
		}
		if _, err := st.Put(ctx, "empty", storage.BytesPayload(nil), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		rc, gi, err := st.Get(ctx, "empty", 0, -1)
		if err != nil {
			t.Fatalf("get empty: %v", err)
		}
		if b, err := io.ReadAll(rc); err != nil || len(b) != 0 || gi.Size != 0 {
			t.Errorf("get empty = %q, %v, %+v", b, err, gi)
		}
		rc.Close()
		if _, err := st.Put(ctx, "../x", storage.BytesPayload(data), storage.PutOptions{}); !errors.Is(err, storage.ErrInvalid) {
			t.Errorf("put bad key: %v, want ErrInvalid", err)
		}
	})

	t.Run("list", func(t *testing.T) {
		keys := []string{"l/b", "l/a/2", "l/a/1", "l/c"}
		for _, k := range keys {
			if _, err := st.Put(ctx, k, storage.BytesPayload([]byte(k)), storage.PutOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		err := st.List(ctx, "l/", func(o storage.ObjectInfo) error {
			if o.Size != int64(len(o.Key)) || o.ETag == "" {
				t.Errorf("listed %+v", o)
			}
			got = append(got, o.Key)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(keys)
		if !slices.Equal(got, keys) {
			t.Errorf("list = %q, want %q", got, keys)
		}
		stop := errors.New("stop")
		if err := st.List(ctx, "l/", func(storage.ObjectInfo) error { return stop }); err != stop {
			t.Errorf("list stopped by fn: %v", err)
		}
		// The store's prefix is stripped, and nothing outside it shows.
		other := mustOpen(t, srv.Config(bucket, ""))
		var all []string
		if err := other.List(ctx, "pfx/l/a/", func(o storage.ObjectInfo) error { all = append(all, o.Key); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(all, []string{"pfx/l/a/1", "pfx/l/a/2"}) {
			t.Errorf("bucket-level list = %q", all)
		}
		for _, k := range keys {
			if err := st.Delete(ctx, k); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Delete(ctx, "l/never"); err != nil {
			t.Errorf("delete missing: %v", err)
		}
		if _, err := st.Stat(ctx, "l/b"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("stat deleted: %v", err)
		}
	})

	t.Run("conditional", func(t *testing.T) {
		first, err := st.Put(ctx, "c/x", storage.BytesPayload([]byte("one")), storage.PutOptions{IfAbsent: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, "c/x", storage.BytesPayload([]byte("two")), storage.PutOptions{IfAbsent: true}); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Errorf("IfAbsent on existing: %v, want ErrPreconditionFailed", err)
		}
		second, err := st.Put(ctx, "c/x", storage.BytesPayload([]byte("three")), storage.PutOptions{IfMatch: first.ETag})
		if err != nil {
			t.Fatalf("IfMatch current: %v", err)
		}
		if _, err := st.Put(ctx, "c/x", storage.BytesPayload([]byte("four")), storage.PutOptions{IfMatch: first.ETag}); !errors.Is(err, storage.ErrPreconditionFailed) {
			t.Errorf("IfMatch stale: %v, want ErrPreconditionFailed", err)
		}
		_, err = st.Put(ctx, "c/none", storage.BytesPayload([]byte("five")), storage.PutOptions{IfMatch: second.ETag})
		if !errors.Is(err, storage.ErrPreconditionFailed) && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("IfMatch missing: %v, want ErrPreconditionFailed or ErrNotFound", err)
		}
		t.Logf("IfMatch on a missing key: %v", err)
		rc, _, err := st.Get(ctx, "c/x", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(rc); string(b) != "three" {
			t.Errorf("after conditional writes: %q", b)
		}
		rc.Close()

		// Racing create-only writers: exactly one wins.
		const writers = 8
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				_, errs[i] = st.Put(ctx, "c/race", storage.BytesPayload(fmt.Appendf(nil, "writer %d", i)), storage.PutOptions{IfAbsent: true})
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, storage.ErrPreconditionFailed):
				t.Errorf("racing writer: %v", err)
			}
		}
		if won != 1 {
			t.Errorf("%d of %d create-only writers won, want 1", won, writers)
		}
	})

	t.Run("multipart", func(t *testing.T) {
		data := bytes.Repeat([]byte("0123456789abcdef"), (storage.MinPartSize+4096)/16)
		up, err := st.NewUpload(ctx, "m/big")
		if err != nil {
			t.Fatal(err)
		}
		// Send the parts out of order.
		p2, err := up.Part(ctx, 2, storage.MinPartSize, storage.NewPayload(bytes.NewReader(data), storage.MinPartSize, int64(len(data))-storage.MinPartSize))
		if err != nil {
			t.Fatal(err)
		}
		p1, err := up.Part(ctx, 1, 0, storage.NewPayload(bytes.NewReader(data), 0, storage.MinPartSize))
		if err != nil {
			t.Fatal(err)
		}
		info, err := up.Complete(ctx, []storage.CompletedPart{p2, p1})
		if err != nil {
			t.Fatal(err)
		}
		stat, err := st.Stat(ctx, "m/big")
		if err != nil {
			t.Fatal(err)
		}
		if info.Size != int64(len(data)) || stat.Size != info.Size || stat.ETag != info.ETag {
			t.Errorf("complete %+v, stat %+v", info, stat)
		}
		rc, _, err := st.Get(ctx, "m/big", storage.MinPartSize-3, 10)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(rc); !bytes.Equal(b, data[storage.MinPartSize-3:storage.MinPartSize+7]) {
			t.Errorf("range across parts = %q", b)
		}
		rc.Close()

		up, err = st.NewUpload(ctx, "m/aborted")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := up.Part(ctx, 1, 0, storage.BytesPayload([]byte("tiny"))); err != nil {
			t.Fatal(err)
		}
		if err := up.Abort(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Stat(ctx, "m/aborted"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("stat aborted upload: %v", err)
		}
	})

	t.Run("credential chain", func(t *testing.T) {
		clearCredentialEnv(t)
		cfg := srv.Config(bucket, "pfx")
		cfg.AccessKey, cfg.SecretKey = "", ""
		t.Run("profile", func(t *testing.T) {
			file := t.TempDir() + "/credentials"
			ini := fmt.Sprintf("[baton-test]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.AccessKey, srv.SecretKey)
			if err := os.WriteFile(file, []byte(ini), 0o600); err != nil {
				t.Fatal(err)
			}
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", file)
			cfg := cfg
			cfg.Profile = "baton-test"
			if _, err := mustOpen(t, cfg).Stat(ctx, "a/b.txt"); err != nil {
				t.Errorf("stat with credentials from profile %s: %v", cfg.Profile, err)
			}
		})
		t.Run("environment", func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
			t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
			if _, err := mustOpen(t, cfg).Stat(ctx, "a/b.txt"); err != nil {
				t.Errorf("stat with credentials from the environment: %v", err)
			}
		})
		t.Run("none", func(t *testing.T) {
			_, err := mustOpen(t, cfg).Put(ctx, "e/x", storage.BytesPayload([]byte("x")), storage.PutOptions{})
			expect(t, "put", err, storage.ErrAuth)
		})
	})

	t.Run("errors", func(t *testing.T) {
		payload := storage.BytesPayload([]byte("x"))
		if _, err := st.Put(ctx, "e/x", payload, storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
		check := func(t *testing.T, st storage.Store, want error) {
			t.Helper()
			_, err := st.Put(ctx, "e/x", payload, storage.PutOptions{})
			expect(t, "put", err, want)
			_, _, err = st.Get(ctx, "e/x", 0, -1)
			expect(t, "get", err, want)
			_, _, err = st.Get(ctx, "e/x", 1, 5)
			expect(t, "get range", err, want)
			_, err = st.Stat(ctx, "e/x")
			expect(t, "stat", err, want)
			_, err = st.Stat(ctx, "e/missing")
			expect(t, "stat missing", err, want)
			err = st.List(ctx, "", func(storage.ObjectInfo) error { return nil })
			expect(t, "list", err, want)
			err = st.Delete(ctx, "e/x")
			expect(t, "delete", err, want)
			_, err = st.NewUpload(ctx, "e/x")
			expect(t, "upload", err, want)
		}
		t.Run("wrong secret", func(t *testing.T) {
			cfg := srv.Config(bucket, "pfx")
			cfg.SecretKey = "not-the-secret"
			check(t, mustOpen(t, cfg), storage.ErrAuth)
		})
		t.Run("unknown access key", func(t *testing.T) {
			cfg := srv.Config(bucket, "pfx")
			cfg.AccessKey = "NOSUCHKEY"
			check(t, mustOpen(t, cfg), storage.ErrAuth)
		})
		t.Run("missing bucket", func(t *testing.T) {
			st := mustOpen(t, srv.Config("baton-no-such-bucket", ""))
			check(t, st, storage.ErrNoBucket)
		})
		t.Run("unreachable", func(t *testing.T) {
			cfg := srv.Config(bucket, "")
			cfg.Endpoint = "http://127.0.0.1:1"
			check(t, mustOpen(t, cfg), storage.ErrUnreachable)
		})
		t.Run("cancelled", func(t *testing.T) {
			ctx, cancel := context.WithCancel(ctx)
			cancel()
			_, err := st.Put(ctx, "e/x", payload, storage.PutOptions{})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("put with a cancelled context: %v", err)
			}
		})
	})
}

// clearCredentialEnv hides every credential the environment and the
// machine's files could offer, for the rest of the test.
func clearCredentialEnv(t *testing.T) {
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
		"AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE",
		"AWS_ROLE_ARN", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI"} {
		t.Setenv(name, "")
	}
	none := t.TempDir() + "/none"
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", none)
	t.Setenv("AWS_CONFIG_FILE", none)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

func expect(t *testing.T, op string, err, want error) {
	t.Helper()
	var se *storage.Error
	switch {
	case !errors.Is(err, want):
		t.Errorf("%s: %v, want %v", op, err, want)
	case !errors.As(err, &se):
		t.Errorf("%s: %T is not a *storage.Error", op, err)
	default:
		t.Logf("%s: %v", op, err)
	}
}

// SmokeTLS checks that a driver honours AWS_CA_BUNDLE against a real server
// of the given kind serving HTTPS with a certificate from a private CA: with
// the CA in the bundle the store works, without it every request fails with
// ErrUnreachable, and a bundle that is no PEM file makes opening the store
// fail with an error naming the variable. It changes the environment, so its
// test must not run in parallel.
func SmokeTLS[S storage.Store](t *testing.T, kind string, open NewStoreFunc[S]) {
	srv := Start(t, kind, TLS())
	bucket := srv.NewBucket(t)
	ctx := t.Context()

	t.Setenv("AWS_CA_BUNDLE", srv.CAFile)
	st, err := open(ctx, srv.Config(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, "tls", storage.BytesPayload([]byte("secret")), storage.PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("put over TLS with the CA in AWS_CA_BUNDLE: %v", err)
	}
	rc, _, err := st.Get(ctx, "tls", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(rc); string(b) != "secret" || err != nil {
		t.Errorf("get over TLS = %q, %v", b, err)
	}
	rc.Close()

	t.Setenv("AWS_CA_BUNDLE", "")
	st, err = open(ctx, srv.Config(bucket, ""))
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Stat(ctx, "tls")
	expect(t, "stat with an unknown CA", err, storage.ErrUnreachable)

	junk := t.TempDir() + "/junk.pem"
	if err := os.WriteFile(junk, []byte("no certificate here"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_CA_BUNDLE", junk)
	if _, err := open(ctx, srv.Config(bucket, "")); err == nil || !strings.Contains(err.Error(), "AWS_CA_BUNDLE") {
		t.Errorf("opening with a junk AWS_CA_BUNDLE: %v, want an error naming the variable", err)
	}
}
