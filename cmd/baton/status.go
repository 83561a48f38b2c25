package main

import (
	"context"
	"encoding/json"
	"time"

	"github.com/batonrun/baton/agent/config"
	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/checkpoint"
	"github.com/batonrun/baton/sync/storage"
)

// statusCmd is "baton status": the run on one screen, from its store
// alone (docs/launch.md).
type statusCmd struct{ env env }

func (c *statusCmd) Run(ctx context.Context, args []string) error {
	var s config.Status
	if err := c.env.settingsNoOperands("status", &s, args); err != nil {
		return err
	}
	var key *checkpoint.Key
	if s.EncryptionKey != "" {
		var err error
		if key, err = checkpoint.ParseKey(s.EncryptionKey); err != nil {
			return usageError{err}
		}
	}
	store, err := c.env.openStore(ctx, s.Store, s.S3Driver, 4)
	if err != nil {
		return err
	}
	st, err := launch.ReadStatus(ctx, storage.WithRetry(store, storage.DefaultRetry()), key, s.RunID, time.Now())
	if err != nil {
		return err
	}
	if s.JSON {
		enc := json.NewEncoder(c.env.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	return st.WriteText(c.env.stdout)
}
