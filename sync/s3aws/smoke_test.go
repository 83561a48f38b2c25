package s3aws_test

import (
	"testing"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
)

// The driver against real servers: the shared Store suite, then the
// S3-specific checks (see internal/s3test).

func TestConformance(t *testing.T) { s3test.Conformance(t, s3aws.New) }

func TestSmokeVersitygw(t *testing.T) { s3test.Smoke(t, s3test.Versitygw, s3aws.New) }

func TestSmokeMinIO(t *testing.T) { s3test.Smoke(t, s3test.MinIO, s3aws.New) }

func TestTLSVersitygw(t *testing.T) { s3test.SmokeTLS(t, s3test.Versitygw, s3aws.New) }
