package runpod

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/launch/apitest"
)

// The shapes below follow runpod/docs api-reference-v2/openapi.json
// (operations listGpuTypes, createPod, listPods, getPod, podAction,
// deletePod) and its examples.

const catalog = `{"gpus":[
 {"id":"NVIDIA GeForce RTX 4090","name":"RTX 4090","pool":"ADA_24","manufacturer":"NVIDIA","memory":24,"secure":true,"community":true,
  "price":{"secure":0.44,"community":0.31},"maxCount":{"secure":8,"community":4},"availability":"HIGH"},
 {"id":"NVIDIA H100 80GB HBM3","name":"H100 SXM","pool":"HOPPER_80","manufacturer":"NVIDIA","memory":80,"secure":true,"community":false,
  "price":{"secure":2.99,"community":0},"maxCount":{"secure":8,"community":0},"availability":"NONE"},
 {"id":"NVIDIA RTX A6000","name":"RTX A6000","pool":"AMPERE_48","manufacturer":"NVIDIA","memory":48,"secure":true,"community":true,
  "price":{"secure":0.49,"community":0.33},"maxCount":{"secure":8,"community":1},"availability":"LOW"}]}`

const podJSON = `{"id":"7h9k2m4n6p","name":"baton-r-3-1","image":"me/trainer:1","args":"","disk":50,"status":"%s","cost":0.88,
 "gpu":{"id":"NVIDIA GeForce RTX 4090","count":2},"cloud":"SECURE"}`

func podAnswer(status string) string { return strings.Replace(podJSON, "%s", status, 1) }

func newProvider(t *testing.T, srv *apitest.Server) *Provider {
	p, err := New(Options{APIOptions: launch.APIOptions{BaseURL: srv.URL + "/v2", Key: "rp-key", Client: srv.Client()}, Cloud: "secure"})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOffers(t *testing.T) {
	t.Parallel()
	srv := apitest.New(t, "rp-key", apitest.Call{Method: "GET", Path: "/v2/catalog/gpus",
		Query: map[string]string{"include": "AVAILABILITY", "product": "POD", "count": "2", "cloud": "SECURE"}, Answer: catalog})
	offers, err := newProvider(t, srv).Offers(context.Background(), launch.Request{GPUs: []string{"rtx4090", "H100 SXM", "RTX A6000"}, GPUCount: 2})
	if err != nil {
		t.Fatal(err)
	}
	// H100: no stock; A6000: fits secure's 8.
	if len(offers) != 2 || offers[0].ID != "NVIDIA GeForce RTX 4090" || offers[0].PricePerHour != 0.88 || offers[1].GPU != "RTX A6000" {
		t.Fatalf("offers = %+v", offers)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	host := launch.Host{Label: "baton-r-3-1", Image: "me/trainer:1", DiskGB: 50, Args: []string{"python", "train.py", "--note", "it's"},
		Env: map[string]string{"BATON_STORE": "s3://b/p", "BATON_RUN_ID": "r", "HF_TOKEN": "hf_x"}}
	offer := launch.Offer{Provider: "runpod", ID: "NVIDIA GeForce RTX 4090", GPUCount: 2, PricePerHour: 0.88}
	body := `{"name":"baton-r-3-1","image":"me/trainer:1","args":"python train.py --note 'it'\\''s'","disk":50,
	 "env":{"BATON_STORE":"s3://b/p","BATON_RUN_ID":"r","HF_TOKEN":"hf_x"},"cloud":"SECURE","gpu":{"id":"NVIDIA GeForce RTX 4090","count":2}}`
	cases := []struct {
		name      string
		status    int
		answer    string
		uncertain bool
	}{
		{"created", 201, podAnswer("PROVISIONING"), false},
		{"server error", 502, `{"title":"Bad Gateway","status":502}`, true},
		{"refused", 400, `{"title":"Bad Request","status":400,"detail":"image required"}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := apitest.New(t, "rp-key", apitest.Call{Method: "POST", Path: "/v2/pods", Body: body, Status: tc.status, Answer: tc.answer})
			m, err := newProvider(t, srv).Create(context.Background(), offer, host)
			if tc.status == 201 {
				if err != nil || m.ID != "7h9k2m4n6p" || m.State != launch.StateStarting || m.PricePerHour != 0.88 {
					t.Fatalf("Create = %+v, %v", m, err)
				}
				return
			}
			apitest.WantCreateError(t, err, tc.uncertain)
		})
	}
}

func TestFindStatusStopDestroy(t *testing.T) {
	t.Parallel()
	srv := apitest.New(t, "rp-key",
		apitest.Call{Method: "GET", Path: "/v2/pods", Answer: `{"pods":[` + podAnswer("RUNNING") + `,{"id":"x1","name":"other","status":"RUNNING","cost":1}]}`},
		apitest.Call{Method: "GET", Path: "/v2/pods/7h9k2m4n6p", Answer: podAnswer("EXITED")},
		apitest.Call{Method: "GET", Path: "/v2/pods/gone1", Status: 404, Answer: `{"title":"Not Found","status":404}`},
		apitest.Call{Method: "POST", Path: "/v2/pods/7h9k2m4n6p/action", Body: `{"action":"stop"}`, Answer: podAnswer("EXITED")},
		apitest.Call{Method: "DELETE", Path: "/v2/pods/7h9k2m4n6p", Status: 204},
	)
	p, ctx := newProvider(t, srv), context.Background()
	found, err := p.Find(ctx, "baton-r-3-1")
	if err != nil || len(found) != 1 || found[0].ID != "7h9k2m4n6p" || found[0].State != launch.StateRunning {
		t.Fatalf("Find = %+v, %v", found, err)
	}
	if m, err := p.Status(ctx, "7h9k2m4n6p"); err != nil || m.State != launch.StateStopped {
		t.Fatalf("Status = %+v, %v", m, err)
	}
	if _, err := p.Status(ctx, "gone1"); !errors.Is(err, launch.ErrNotFound) {
		t.Fatalf("Status of a deleted pod: %v", err)
	}
	if err := p.Stop(ctx, "7h9k2m4n6p"); err != nil {
		t.Fatal(err)
	}
	if err := p.Destroy(ctx, "7h9k2m4n6p"); err != nil {
		t.Fatal(err)
	}
}

func TestNoKey(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without a key succeeded")
	}
}
