// Package scripts holds baton's shell scripts (install, test, demo,
// benchmarks, test-server and test-base setup) and their tests: shellcheck
// on every script, and scripts/install.sh run in a chroot of a debootstrapped
// Debian. It has no Go code of its own.
package scripts
