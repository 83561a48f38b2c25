package s3minio_test

import (
	"testing"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3minio"
)

// The driver against real servers: the shared Store suite, then the
// S3-specific checks (see s3test.Driver).
func TestDriver(t *testing.T) { s3test.Driver(t, s3minio.New) }
