package checkpoint

import (
	"errors"
	"fmt"
)

// ErrDamaged is wrapped by every error about a store object that is not what
// a valid manifest says it is: a chunk that is missing, has the wrong
// length, or whose content does not match its hash. The manifest is fine;
// the store lost or tore the object (a server that keeps a partial object
// under the final name when its client dies mid-PUT, a hand, a disk).
// Callers branch on it to fall back to an older checkpoint or to repair
// the store ("baton checkpoint verify --repair").
var ErrDamaged = errors.New("damaged store object")

// Damage is what is wrong with one chunk.
type Damage string

// The kinds of Damage.
const (
	// ChunkMissing: no object under the chunk's key.
	ChunkMissing Damage = "missing"
	// ChunkWrongSize: the object's length is not the chunk's.
	ChunkWrongSize Damage = "wrong size"
	// ChunkWrongContent: the object's content does not hash to its name.
	ChunkWrongContent Damage = "content does not match its hash"
	// ChunkNotAuthentic: a sealed chunk (of an encrypted run) that does
	// not open with the run's key under its name.
	ChunkNotAuthentic Damage = "does not authenticate (tampered with or damaged)"
)

// DamagedChunkError names one damaged chunk of a checkpoint. It wraps
// ErrDamaged.
type DamagedChunkError struct {
	// Hash names the chunk; Key is its object's key in the store.
	Hash, Key string
	// Damage is what is wrong with it.
	Damage Damage
	// Size is the stored object's length (for ChunkWrongSize), Want the
	// chunk's length as the manifest says.
	Size, Want int64
}

func (e *DamagedChunkError) Error() string {
	if e.Damage == ChunkWrongSize {
		return fmt.Sprintf("%v: chunk %s is %d bytes, the manifest says %d (store object %s)", ErrDamaged, e.Hash, e.Size, e.Want, e.Key)
	}
	return fmt.Sprintf("%v: chunk %s %s (store object %s)", ErrDamaged, e.Hash, e.Damage, e.Key)
}

// Unwrap makes errors.Is(err, ErrDamaged) true.
func (e *DamagedChunkError) Unwrap() error { return ErrDamaged }

// damagedChunk returns the error for chunk hash that has damage d.
func damagedChunk(hash string, d Damage, size, want int64) *DamagedChunkError {
	return &DamagedChunkError{Hash: hash, Key: chunkKey(hash), Damage: d, Size: size, Want: want}
}
