package file_test

import (
	"testing"

	bsync "github.com/batonrun/baton/sync"
	"github.com/batonrun/baton/sync/file"
	"github.com/batonrun/baton/sync/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) bsync.Store {
		s, err := file.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
