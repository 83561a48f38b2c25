package file_test

import (
	"testing"

	"github.com/batonrun/baton/sync/file/filetest"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store { return filetest.New(t) })
}
