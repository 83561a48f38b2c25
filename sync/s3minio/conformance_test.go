package s3minio_test

import (
	"testing"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3minio"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storetest"
)

// TestConformance runs the shared Store suite against each real server, one
// fresh bucket per subtest, with a key prefix so that prefix handling is
// exercised too.
func TestConformance(t *testing.T) {
	for _, kind := range s3test.Kinds() {
		t.Run(kind, func(t *testing.T) {
			srv := s3test.Start(t, kind)
			storetest.Run(t, func(t *testing.T) storage.Store {
				st, err := s3minio.New(t.Context(), srv.Config(srv.NewBucket(t), "conformance"))
				if err != nil {
					t.Fatal(err)
				}
				return st
			})
		})
	}
}
