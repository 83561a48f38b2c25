package s3aws_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/storage"
)

// TestNoDefaultChecksumsForOtherStores puts a reverse proxy that behaves like
// the stores that reject aws-sdk-go-v2's default CRC32 checksums (R2, B2,
// Ceph, older MinIO) in front of a real server: any request carrying a
// flexible checksum or an aws-chunked body is refused. Every operation the
// driver sends must still get through.
func TestNoDefaultChecksumsForOtherStores(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	target, err := url.Parse(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var refused, passed atomic.Int64
	proxy := httputil.NewSingleHostReverseProxy(target)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for name := range r.Header {
			lower := strings.ToLower(name)
			if strings.HasPrefix(lower, "x-amz-checksum-") || lower == "x-amz-sdk-checksum-algorithm" || lower == "x-amz-trailer" ||
				strings.Contains(r.Header.Get("Content-Encoding"), "aws-chunked") {
				refused.Add(1)
				http.Error(w, "<Error><Code>NotImplemented</Code><Message>checksum header "+name+" not supported</Message></Error>", http.StatusNotImplemented)
				return
			}
		}
		passed.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)

	cfg := srv.Config(srv.NewBucket(t), "checksums")
	cfg.Endpoint = front.URL
	s, err := s3aws.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	data := bytes.Repeat([]byte("x"), storage.MinPartSize+1000)
	if _, err := s.Put(ctx, "single", storage.BytesPayload(data[:1000]), storage.PutOptions{IfAbsent: true}); err != nil {
		t.Fatalf("put: %v", err)
	}
	up, err := s.NewUpload(ctx, "multi")
	if err != nil {
		t.Fatalf("new upload: %v", err)
	}
	p1, err := up.Part(ctx, 1, 0, storage.BytesPayload(data[:storage.MinPartSize]))
	if err != nil {
		t.Fatalf("part 1: %v", err)
	}
	p2, err := up.Part(ctx, 2, storage.MinPartSize, storage.BytesPayload(data[storage.MinPartSize:]))
	if err != nil {
		t.Fatalf("part 2: %v", err)
	}
	if _, err := up.Complete(ctx, []storage.CompletedPart{p1, p2}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	rc, _, err := s.Get(ctx, "multi", 0, -1)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("multipart object read back %d bytes (%v), want %d", len(got), err, len(data))
	}
	if err := s.List(ctx, "", func(storage.ObjectInfo) error { return nil }); err != nil {
		t.Fatalf("list: %v", err)
	}
	if err := s.Delete(ctx, "single"); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if refused.Load() != 0 || passed.Load() < 7 {
		t.Fatalf("%d requests refused for checksums, %d passed", refused.Load(), passed.Load())
	}
}
