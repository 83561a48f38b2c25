// Package checkpoint will own the checkpoint repository: chunking, manifests,
// commits, lease and fencing, restore and retention, on top of a sync.Store
// (see ../shared/DESIGN.md and issue 3). It knows nothing of processes or
// platforms.
package checkpoint
