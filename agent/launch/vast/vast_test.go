package vast

import (
	"context"
	"errors"
	"testing"

	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/launch/apitest"
)

// The shapes below follow the vast CLI (vast-ai/vast-cli vast.py:
// search__offers, create__instance, show__instance,
// _fetch_all_instances_v1, stop_instance, destroy_instance).

const offers = `{"offers":[
 {"id":4101,"machine_id":77,"gpu_name":"RTX 4090","num_gpus":1,"dph_total":0.41,"min_bid":0.20,"reliability":0.99,"geolocation":"Norway, NO"},
 {"id":4102,"machine_id":78,"gpu_name":"RTX 3090","num_gpus":1,"dph_total":0.22,"min_bid":0.10,"reliability":0.99,"geolocation":"US"}]}`

func newProvider(t *testing.T, srv *apitest.Server, interruptible bool) *Provider {
	p, err := New(Options{APIOptions: launch.APIOptions{BaseURL: srv.URL + "/api/v0", Key: "vast-key", Client: srv.Client()}, Verified: true, MinReliability: 0.95, Interruptible: interruptible})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOffers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name          string
		interruptible bool
		search        string
		price         float64
	}{
		{"on demand", false, `"on-demand"`, 0.41},
		{"bid", true, `"bid"`, 0.22},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			body := `{"rentable":{"eq":true},"rented":{"eq":false},"external":{"eq":false},"num_gpus":{"eq":1},"disk_space":{"gte":40},
			 "order":[["dph_total","asc"]],"type":` + tc.search + `,"allocated_storage":40,"limit":1000,"verified":{"eq":true},"reliability":{"gte":0.95}}`
			srv := apitest.New(t, "vast-key", apitest.Call{Method: "POST", Path: "/api/v0/bundles/", Body: body, Answer: offers})
			got, err := newProvider(t, srv, tc.interruptible).Offers(context.Background(), launch.Request{GPUs: []string{"RTX 4090"}, GPUCount: 1, DiskGB: 40})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].ID != "4101" || got[0].Machine != "vast:77" || got[0].PricePerHour != tc.price || got[0].Interruptible != tc.interruptible {
				t.Fatalf("offers = %+v", got)
			}
		})
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	args := []string{"python", "train.py"}
	cases := []struct {
		name      string
		detach    bool
		bid       bool
		body      string
		status    int
		answer    string
		uncertain bool
		ok        bool
	}{
		{"args", false, false, `{"client_id":"me","image":"me/t:1","env":{"HF_TOKEN":"hf_x"},"disk":40,"label":"baton-r-0-1","runtype":"args",
		  "args":["python","train.py"],"cancel_unavail":true}`, 200, `{"success":true,"new_contract":7835610}`, false, true},
		{"ssh with a bid", true, true, `{"client_id":"me","image":"me/t:1","env":{"HF_TOKEN":"hf_x"},"disk":40,"label":"baton-r-0-1","runtype":"ssh_direc ssh_proxy",
		  "onstart":"baton run --detach -- python train.py","price":0.22,"cancel_unavail":true}`, 200, `{"success":true,"new_contract":7835611}`, false, true},
		{"refused in the body", false, false, "", 200, `{"success":false,"error":"invalid_args","msg":"offer no longer available"}`, false, false},
		{"timeout-like 504", false, false, "", 504, `gateway timeout`, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := apitest.New(t, "vast-key", apitest.Call{Method: "PUT", Path: "/api/v0/asks/4101/", Body: tc.body, Status: tc.status, Answer: tc.answer})
			offer := launch.Offer{Provider: "vast", ID: "4101", Machine: "vast:77", GPUCount: 1, PricePerHour: 0.22, Interruptible: tc.bid}
			m, err := newProvider(t, srv, tc.bid).Create(context.Background(), offer,
				launch.Host{Label: "baton-r-0-1", Image: "me/t:1", Args: args, Env: map[string]string{"HF_TOKEN": "hf_x"}, DiskGB: 40, Detach: tc.detach})
			if tc.ok {
				if err != nil || m.ID == "" || m.Machine != "vast:77" {
					t.Fatalf("Create = %+v, %v", m, err)
				}
				return
			}
			apitest.WantCreateError(t, err, tc.uncertain)
		})
	}
}

func TestStatus(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		answer string
		want   string
		gone   bool
	}{
		{"running", `{"instances":{"id":9,"label":"l","machine_id":77,"actual_status":"running","intended_status":"running","dph_total":0.41}}`, launch.StateRunning, false},
		{"loading but meant stopped (outbid)", `{"instances":{"id":9,"actual_status":"loading","intended_status":"stopped"}}`, launch.StateStopped, false},
		{"loading", `{"instances":{"id":9,"actual_status":"loading","intended_status":"running"}}`, launch.StateStarting, false},
		{"exited", `{"instances":{"id":9,"actual_status":"exited","intended_status":"running"}}`, launch.StateStopped, false},
		{"gone", `{"instances":null}`, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := apitest.New(t, "vast-key", apitest.Call{Method: "GET", Path: "/api/v0/instances/9/", Query: map[string]string{"owner": "me"}, Answer: tc.answer})
			m, err := newProvider(t, srv, false).Status(context.Background(), "9")
			if tc.gone {
				if !errors.Is(err, launch.ErrNotFound) {
					t.Fatalf("Status = %+v, %v; want ErrNotFound", m, err)
				}
				return
			}
			if err != nil || m.State != tc.want {
				t.Fatalf("Status = %+v, %v; want %s", m, err, tc.want)
			}
		})
	}
}

func TestFindStopDestroy(t *testing.T) {
	t.Parallel()
	srv := apitest.New(t, "vast-key",
		apitest.Call{Method: "GET", Path: "/api/v1/instances/", Query: map[string]string{"select_filters": `{"label":{"eq":"baton-r-0-1"}}`},
			Answer: `{"instances":[{"id":9,"label":"baton-r-0-1","machine_id":77,"actual_status":"loading","intended_status":"running"}],"next_token":"t2"}`},
		apitest.Call{Method: "GET", Path: "/api/v1/instances/", Query: map[string]string{"after_token": "t2"}, Answer: `{"instances":[]}`},
		apitest.Call{Method: "PUT", Path: "/api/v0/instances/9/", Body: `{"state":"stopped"}`, Answer: `{"success":true}`},
		apitest.Call{Method: "DELETE", Path: "/api/v0/instances/9/", Answer: `{"success":true}`},
	)
	p, ctx := newProvider(t, srv, false), context.Background()
	found, err := p.Find(ctx, "baton-r-0-1")
	if err != nil || len(found) != 1 || found[0].ID != "9" || found[0].Machine != "vast:77" {
		t.Fatalf("Find = %+v, %v", found, err)
	}
	if err := p.Stop(ctx, "9"); err != nil {
		t.Fatal(err)
	}
	if err := p.Destroy(ctx, "9"); err != nil {
		t.Fatal(err)
	}
}
