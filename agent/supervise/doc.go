// Package supervise runs the trainer the way a container's init process
// should: in its own process group, with SIGTERM and SIGINT forwarded to the
// whole group, SIGKILL after a grace period, every orphaned zombie reaped, and
// the trainer's own exit status delivered intact.
//
// # One owner of wait4(-1)
//
// When baton is PID 1 of a container (or a child subreaper, see
// [BecomeSubreaper]) every process orphaned below it is re-parented to it and
// stays a zombie until baton waits for it. A [Reaper] is the one place in the
// process that calls wait4(-1): it reaps every child that exits and hands the
// status of each child it started itself ([Reaper.Start]) to that child's
// [Child], while the statuses of unknown pids (orphans) are counted, logged and
// passed to [ReaperOptions.OnOrphan].
//
// While a Reaper runs, no other code in the process may wait for its own
// children: exec.Cmd.Wait, Run, Output and CombinedOutput would race with the
// Reaper and fail with ECHILD when the Reaper wins. Start such commands with
// [Reaper.Start] and wait with [Child.Wait] instead. Run at most one Reaper per
// process.
//
// # The trainer
//
// A [Supervisor] runs one trainer at a time ([Supervisor.Run]) from a [Spec],
// forwards stop requests ([Supervisor.Stop], [Supervisor.Forward]) to its
// process group, escalates to SIGKILL of the group after [Spec.Grace], and
// announces the first stop request on [Supervisor.Stopping] so the agent can
// start its final commit at once. [Supervisor.RunWithRestarts] restarts a
// failed trainer under a [Policy] (a cap and an exponential backoff), but never
// after a requested stop.
//
// A child inherits the niceness and I/O priority of the thread that forks
// it, not of the process. [ReaperOptions.Spawn] chooses that thread: baton run
// forks the trainer on one kept at baton's starting priority while its other
// threads run lowered (internal/priority), so the trainer starts at the
// former.
package supervise
