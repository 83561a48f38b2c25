package file_test

import (
	"testing"

	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/storage"
	"github.com/batonrun/baton/sync/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		s, err := file.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
