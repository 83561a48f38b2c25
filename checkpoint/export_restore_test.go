package checkpoint

// SetRestoreHook makes fn run at each named step of every restore of this
// process (see the calls of at in restore.go), for the tests that kill a
// restore there. It returns a func that removes the hook.
func SetRestoreHook(fn func(step string)) func() {
	testHook = fn
	return func() { testHook = nil }
}
