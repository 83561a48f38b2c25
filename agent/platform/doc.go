// Package platform finds out where baton runs and smooths the platform differences away.
//
// It has three parts:
//
//   - [Detect] reads the environment and a few marker files and returns one normalized
//     [Description]: the platform (RunPod, Vast.ai, Kubernetes, Lambda, plain Docker or a
//     developer's machine), the instance id, the GPU count, the public IP and port map, the
//     directory that survives a stop, and whether the instance is interruptible. It is pure:
//     the environment and the file system are passed in, so tests run it on fakes.
//   - [Action] and [Controller]: the exit actions (none, stop, terminate) and the platform
//     APIs that carry them out (RunPod REST with GraphQL as the fallback, Vast.ai REST).
//     Every call is bounded by a timeout and a failed call names the platform, the call and
//     the HTTP status, never the key.
//   - [SetupSSH] installs the keys the platform passes in (PUBLIC_KEY on RunPod,
//     SSH_PUBLIC_KEY on Vast.ai) and starts sshd, as the platforms' own start scripts do,
//     so that replacing the image entrypoint with baton does not cost the user SSH.
//
// The facts this package relies on, and where each comes from, are listed in
// docs/platforms.md and next to the code that uses them.
package platform
