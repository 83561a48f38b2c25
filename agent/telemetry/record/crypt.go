package record

import (
	"github.com/batonrun/baton/checkpoint"
)

// sealer seals and opens the telemetry objects of a run: with a key, each
// part and compacted object is sealed as checkpoint.SealObject does, with
// associated data checkpoint.TelemetryAD(run, its object key), so that no
// object can stand in for another; without one, objects are plain and a
// sealed one fails with a *checkpoint.KeyError.
type sealer struct {
	key *checkpoint.Key
	run string
}

// seal returns what is stored under objKey for data.
func (s sealer) seal(objKey string, data []byte) []byte {
	if s.key == nil {
		return data
	}
	return s.key.SealObject(data, checkpoint.TelemetryAD(s.run, objKey))
}

// open returns the lines that raw, the object stored under objKey, holds.
func (s sealer) open(objKey string, raw []byte) ([]byte, error) {
	return checkpoint.OpenObject(s.key, s.run, objKey, raw, checkpoint.TelemetryAD(s.run, objKey))
}
