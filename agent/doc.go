// Package agent will own the lifecycle of one run on one host: platform
// detection, configuration, supervision of the trainer, the periodic commit
// loop, health policy and self-stop (see ../shared/DESIGN.md and issue 4).
// Nothing imports it but cmd/baton.
package agent
