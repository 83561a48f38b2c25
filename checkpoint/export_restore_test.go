package checkpoint

// SetRestoreHook makes fn run at each named step of every restore of this
// process (see the calls of at in restore.go), for the tests that kill a
// restore there. It returns a func that removes the hook.
func SetRestoreHook(fn func(step string)) func() {
	testHook = fn
	return func() { testHook = nil }
}

// SealChunk seals data as the object of the chunk named name, as a writer
// with key k would, whether or not name is data's keyed hash.
func SealChunk(k *Key, name string, data []byte) []byte {
	return k.seal(data, chunkAD(name))
}
