package agent

import (
	"slices"
	"strings"
)

// withheldEnv are the variables of baton's environment that the trainer
// does not get unless --pass-env names them: secrets that only baton
// needs. BATON_METRICS_TOKEN guards baton's metrics endpoint;
// RUNPOD_API_KEY (RunPod) and CONTAINER_API_KEY (Vast.ai) can stop or
// delete the machine and everything on the account. The AWS_* credentials
// stay: a trainer commonly reads its data with them.
var withheldEnv = []string{"BATON_METRICS_TOKEN", "RUNPOD_API_KEY", "CONTAINER_API_KEY"}

// trainerEnv is the trainer's environment: baton's (environ, NAME=value
// pairs), less the withheld variables that pass does not name. It returns
// the names it left out, in environ's order.
func trainerEnv(environ, pass []string) (env, withheld []string) {
	env = make([]string, 0, len(environ))
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if isWithheld(name, pass) {
			withheld = append(withheld, name)
			continue
		}
		env = append(env, kv)
	}
	return env, withheld
}

func isWithheld(name string, pass []string) bool {
	return slices.Contains(withheldEnv, name) && !slices.Contains(pass, name)
}
