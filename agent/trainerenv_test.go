package agent

import (
	"reflect"
	"testing"
)

func TestTrainerEnv(t *testing.T) {
	environ := []string{"PATH=/bin", "RUNPOD_API_KEY=rk", "BATON_METRICS_TOKEN=mt", "CONTAINER_API_KEY=ck",
		"AWS_SECRET_ACCESS_KEY=aws", "HF_TOKEN=hf", "RUNPOD_POD_ID=p1"}
	cases := []struct {
		name           string
		pass           []string
		want, withheld []string
	}{
		{"withheld by default", nil,
			[]string{"PATH=/bin", "AWS_SECRET_ACCESS_KEY=aws", "HF_TOKEN=hf", "RUNPOD_POD_ID=p1"},
			[]string{"RUNPOD_API_KEY", "BATON_METRICS_TOKEN", "CONTAINER_API_KEY"}},
		{"one passed on", []string{"RUNPOD_API_KEY"},
			[]string{"PATH=/bin", "RUNPOD_API_KEY=rk", "AWS_SECRET_ACCESS_KEY=aws", "HF_TOKEN=hf", "RUNPOD_POD_ID=p1"},
			[]string{"BATON_METRICS_TOKEN", "CONTAINER_API_KEY"}},
		{"all passed on", []string{"CONTAINER_API_KEY", "BATON_METRICS_TOKEN", "RUNPOD_API_KEY", "NOT_SET"}, environ, nil},
		{"passing a name not withheld changes nothing", []string{"HF_TOKEN"},
			[]string{"PATH=/bin", "AWS_SECRET_ACCESS_KEY=aws", "HF_TOKEN=hf", "RUNPOD_POD_ID=p1"},
			[]string{"RUNPOD_API_KEY", "BATON_METRICS_TOKEN", "CONTAINER_API_KEY"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env, withheld := trainerEnv(environ, c.pass)
			if !reflect.DeepEqual(env, c.want) || !reflect.DeepEqual(withheld, c.withheld) {
				t.Errorf("trainerEnv = %q, %q\nwant %q, %q", env, withheld, c.want, c.withheld)
			}
		})
	}
}
