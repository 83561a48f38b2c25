// Package images holds baton's ready images (one Dockerfile per directory:
// pytorch, slim) and their tests; it has no Go code of its own. The tests
// build the root Dockerfile and every image with buildah on a local Debian
// base, run baton inside the images, and parse every Dockerfile with
// BuildKit's parser and linter. See internal/imagetest for what they need.
//
// The directory is a module of its own (github.com/batonrun/baton/images, with
// baton replaced by this checkout) so that BuildKit, which only these tests
// use, is no dependency of baton: run them with `cd images && go test ./...`,
// as scripts/test.sh does.
package images
