// Package docs holds baton's documentation (Markdown; config.md is generated
// from agent/config) and its test, which keeps the command examples of the
// docs, the README and examples/README.md true: every baton command line they
// show names a command and flags that exist, and those of shell blocks run,
// against a local S3 server and file stores, and exit 0. It has no Go code of
// its own.
package docs
