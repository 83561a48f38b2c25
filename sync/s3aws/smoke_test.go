package s3aws_test

import (
	"context"
	"testing"

	"github.com/batonrun/baton/internal/s3test"
	"github.com/batonrun/baton/sync/s3aws"
	"github.com/batonrun/baton/sync/s3config"
	"github.com/batonrun/baton/sync/storage"
)

func open(ctx context.Context, cfg s3config.Config) (storage.Store, error) {
	return s3aws.New(ctx, cfg)
}

func TestSmokeVersitygw(t *testing.T) { s3test.Smoke(t, s3test.Versitygw, open) }

func TestSmokeMinIO(t *testing.T) { s3test.Smoke(t, s3test.MinIO, open) }

func TestTLSVersitygw(t *testing.T) { s3test.SmokeTLS(t, s3test.Versitygw, open) }
