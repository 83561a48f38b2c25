package transfer_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/batonrun/baton/internal/faultproxy"
	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/s3minio"
	"github.com/batonrun/baton/sync/storage"
)

// openers are the two S3 drivers.
var openers = []struct {
	name string
	open func(context.Context, s3config.Config) (storage.Store, error)
}{
	{"aws", func(ctx context.Context, c s3config.Config) (storage.Store, error) { return s3aws.New(ctx, c) }},
	{"minio", func(ctx context.Context, c s3config.Config) (storage.Store, error) { return s3minio.New(ctx, c) }},
}

// TestCutConnectionsStillFinishByteIdentical pushes and pulls through a real
// TCP proxy that cuts connections to a real S3 server mid-transfer.
func TestCutConnectionsStillFinishByteIdentical(t *testing.T) {
	srv := s3test.Start(t, s3test.Versitygw)
	src := t.TempDir()
	want := makeTree(t, src, 6)
	for _, o := range openers {
		t.Run(o.name, func(t *testing.T) {
			proxy := faultproxy.Start(t, strings.TrimPrefix(srv.Endpoint, "http://"), faultproxy.Options{CutAfterBytes: 3 << 20, Cuts: 8, Seed: 7})
			cfg := srv.Config(srv.NewBucket(t), "wire")
			cfg.Endpoint = proxy.URL()
			store, err := o.open(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := engine(4).Push(t.Context(), src, store); err != nil {
				t.Fatalf("push through a cutting proxy: %v", err)
			}
			dst := t.TempDir()
			if _, err := engine(4).Pull(t.Context(), store, dst); err != nil {
				t.Fatalf("pull through a cutting proxy: %v", err)
			}
			sameTree(t, readTree(t, dst), want)
			if proxy.Cuts() == 0 {
				t.Fatal("the proxy cut no connection; the test proves nothing")
			}
			t.Logf("%d connections, %d cut", proxy.Conns(), proxy.Cuts())

			// During an outage a pull gives up after a bounded number of
			// tries with an error that says the network failed.
			proxy.SetDown(true)
			faulty := &countingStore{Store: store}
			_, err = engine(2).Pull(t.Context(), faulty, t.TempDir())
			if !errors.Is(err, storage.ErrTransient) && !errors.Is(err, storage.ErrUnreachable) {
				t.Fatalf("pull during an outage: %v, want a transient or unreachable error", err)
			}
			if faulty.lists > noWait.Attempts {
				t.Fatalf("%d list attempts during an outage, want at most %d", faulty.lists, noWait.Attempts)
			}
		})
	}
}

// countingStore counts List calls.
type countingStore struct {
	storage.Store
	lists int
}

func (c *countingStore) List(ctx context.Context, prefix string, fn func(storage.ObjectInfo) error) error {
	c.lists++
	return c.Store.List(ctx, prefix, fn)
}
