package doctor

import (
	"fmt"
	"strings"

	"github.com/batonrun/baton/agent/platform"
)

// checkPlatform says what platform.Detect found. It never fails: every host
// is some platform, a developer's machine included.
func checkPlatform(d platform.Description) Check {
	var parts []string
	switch d.Platform {
	case platform.RunPod:
		parts = append(parts, "RunPod pod "+orUnknown(d.InstanceID))
	case platform.Vast:
		parts = append(parts, "Vast.ai instance "+orUnknown(d.InstanceID))
	case platform.Kubernetes:
		parts = append(parts, "Kubernetes pod "+orUnknown(d.InstanceID))
	case platform.Lambda:
		parts = append(parts, "Lambda instance")
	case platform.Docker:
		parts = append(parts, "Docker container "+orUnknown(d.InstanceID))
	default:
		parts = append(parts, "no platform detected (a plain machine)")
	}
	if d.Host != "" {
		parts[0] += " on " + d.Host
	}
	if d.GPUCount > 0 {
		parts = append(parts, plural(d.GPUCount, "GPU")+" by its count")
	}
	if d.PublicIP != "" {
		parts = append(parts, "public IP "+d.PublicIP)
	}
	if len(d.Ports) > 0 {
		parts = append(parts, "ports "+d.PortsString())
	}
	if d.PersistentDir != "" {
		parts = append(parts, "persistent "+d.PersistentDir)
	} else {
		parts = append(parts, "no persistent directory known")
	}
	return Check{Name: "platform", Status: OK, Reason: strings.Join(parts, ", ")}
}

func orUnknown(s string) string {
	if s == "" {
		return "(id unknown)"
	}
	return s
}

// plural writes n and the noun, with an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
