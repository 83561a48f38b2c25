// Package vast is the launch provider of Vast.ai instances, through the
// API the vast CLI drives (vast-ai/vast-cli, vast.py; vast-ai/docs,
// api-reference): the offer search (POST /api/v0/bundles/), create from an
// offer (PUT /api/v0/asks/{offer_id}/), an instance's status (GET
// /api/v0/instances/{id}/), the list of instances (GET /api/v1/instances/),
// stop (PUT /api/v0/instances/{id}/ {"state":"stopped"}) and destroy
// (DELETE /api/v0/instances/{id}/).
package vast

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/platform"
)

// Options configure the provider.
type Options struct {
	// APIOptions: the base URL with its /api/v0 ("": platform.DefaultVastURL) and the key (VAST_API_KEY).
	launch.APIOptions
	// Verified keeps to verified machines; MinReliability is the least
	// reliability; Interruptible rents by bid.
	Verified       bool
	MinReliability float64
	Interruptible  bool
}

// Provider rents Vast.ai instances.
type Provider struct {
	v0, v1 launch.API
	o      Options
}

// New returns the provider; it fails without a key.
func New(o Options) (*Provider, error) {
	v0, err := launch.NewAPI("Vast", o.BaseURL, platform.DefaultVastURL, o.Key, "VAST_API_KEY", o.Client)
	if err != nil {
		return nil, err
	}
	v1 := v0
	v1.Base = strings.TrimSuffix(v0.Base, "/v0") + "/v1"
	return &Provider{v0: v0, v1: v1, o: o}, nil
}

// Name is "vast".
func (p *Provider) Name() string { return "vast" }

// offer is one row of the search's answer.
type offer struct {
	ID          int64   `json:"id"`
	MachineID   int64   `json:"machine_id"`
	GPUName     string  `json:"gpu_name"`
	NumGPUs     int     `json:"num_gpus"`
	DPHTotal    float64 `json:"dph_total"`
	MinBid      float64 `json:"min_bid"`
	Geolocation string  `json:"geolocation"`
}

// Offers searches the rentable offers of GPUCount GPUs with the disk, on
// verified and reliable machines if asked, cheapest first, and keeps the
// GPU types of the spec. An interruptible offer's price is the bid: its
// minimum bid plus 10%, no more than the price bound.
func (p *Provider) Offers(ctx context.Context, req launch.Request) ([]launch.Offer, error) {
	q := map[string]any{
		"rentable":          map[string]any{"eq": true},
		"rented":            map[string]any{"eq": false},
		"external":          map[string]any{"eq": false},
		"num_gpus":          map[string]any{"eq": req.GPUCount},
		"disk_space":        map[string]any{"gte": req.DiskGB},
		"order":             [][]string{{"dph_total", "asc"}},
		"type":              "on-demand",
		"allocated_storage": req.DiskGB,
		"limit":             1000,
	}
	if p.o.Verified {
		q["verified"] = map[string]any{"eq": true}
	}
	if p.o.MinReliability > 0 {
		q["reliability"] = map[string]any{"gte": p.o.MinReliability}
	}
	if p.o.Interruptible {
		q["type"] = "bid"
	}
	var resp struct {
		Offers []offer `json:"offers"`
	}
	if err := p.v0.Do(ctx, "POST /bundles/", http.MethodPost, "/bundles/", nil, q, &resp); err != nil {
		return nil, err
	}
	var out []launch.Offer
	for _, o := range resp.Offers {
		if !launch.MatchGPU(o.GPUName, req.GPUs) {
			continue
		}
		price := o.DPHTotal
		if p.o.Interruptible {
			price = math.Ceil(o.MinBid*1100-1e-6) / 1000 // to the tenth of a cent, up
			if req.MaxPrice > 0 {
				price = min(price, req.MaxPrice)
			}
			if price < o.MinBid {
				continue
			}
		}
		out = append(out, launch.Offer{Provider: "vast", ID: strconv.FormatInt(o.ID, 10), Machine: "vast:" + strconv.FormatInt(o.MachineID, 10),
			GPU: o.GPUName, GPUCount: o.NumGPUs, PricePerHour: price, Interruptible: p.o.Interruptible, Where: o.Geolocation})
	}
	return out, nil
}

// createBody is PUT /asks/{id}/'s body, as the CLI's create instance
// sends it.
type createBody struct {
	ClientID string            `json:"client_id"`
	Image    string            `json:"image"`
	Env      map[string]string `json:"env"`
	Disk     int               `json:"disk"`
	Label    string            `json:"label"`
	Runtype  string            `json:"runtype"`
	Args     []string          `json:"args,omitempty"`
	Onstart  string            `json:"onstart,omitempty"`
	Price    *float64          `json:"price,omitempty"`
	// CancelUnavail: fail rather than create a stopped instance when the
	// machine cannot start it now.
	CancelUnavail bool `json:"cancel_unavail"`
}

// Create rents the offer: in args mode the trainer's command is the
// arguments of the image's entrypoint, which must be baton run -- (as in
// images/); in ssh mode onstart runs baton run --detach -- COMMAND
// (onstart runs again at every start; a second --detach is a no-op). The
// run's settings travel as BATON_* variables in env. A create that got no
// answer or a 5xx wraps launch.ErrUncertain.
func (p *Provider) Create(ctx context.Context, o launch.Offer, h launch.Host) (launch.Machine, error) {
	env := h.Env
	if env == nil {
		env = map[string]string{}
	}
	b := createBody{ClientID: "me", Image: h.Image, Env: env, Disk: h.DiskGB, Label: h.Label, Runtype: "args", Args: h.Args, CancelUnavail: true}
	if h.Detach {
		b.Runtype, b.Args, b.Onstart = "ssh_direc ssh_proxy", nil, "baton run --detach -- "+launch.ShellJoin(h.Args)
	}
	if o.Interruptible {
		b.Price = &o.PricePerHour
	}
	var resp struct {
		Success     bool   `json:"success"`
		NewContract int64  `json:"new_contract"`
		Msg         string `json:"msg"`
		Error       string `json:"error"`
	}
	if err := p.v0.Do(ctx, "PUT /asks/{id}/", http.MethodPut, "/asks/"+url.PathEscape(o.ID)+"/", nil, b, &resp); err != nil {
		return launch.Machine{}, launch.Uncertain(err)
	}
	if !resp.Success || resp.NewContract == 0 {
		return launch.Machine{}, &platform.APIError{Platform: "Vast", Call: "PUT /asks/{id}/", StatusCode: http.StatusOK,
			Message: "rejected: " + strings.TrimSpace(resp.Error+" "+resp.Msg)}
	}
	return launch.Machine{Provider: "vast", ID: strconv.FormatInt(resp.NewContract, 10), Label: h.Label, Machine: o.Machine,
		State: launch.StateStarting, PricePerHour: o.PricePerHour}, nil
}

// instance is what the API says of an instance.
type instance struct {
	ID             int64   `json:"id"`
	Label          string  `json:"label"`
	MachineID      int64   `json:"machine_id"`
	ActualStatus   string  `json:"actual_status"`
	IntendedStatus string  `json:"intended_status"`
	DPHTotal       float64 `json:"dph_total"`
}

// machine reads an instance's state from both of its statuses: a new
// instance can sit "loading" (actual) while it is meant to be stopped
// (intended), as when its bid lost; it bills no compute then.
func (in instance) machine() launch.Machine {
	m := launch.Machine{Provider: "vast", ID: strconv.FormatInt(in.ID, 10), Label: in.Label, PricePerHour: in.DPHTotal}
	if in.MachineID != 0 {
		m.Machine = "vast:" + strconv.FormatInt(in.MachineID, 10)
	}
	switch {
	case in.IntendedStatus == "stopped" || in.ActualStatus == "exited" || in.ActualStatus == "stopped":
		m.State = launch.StateStopped
	case in.ActualStatus == "running" && in.IntendedStatus == "running":
		m.State = launch.StateRunning
	case in.ActualStatus == "destroyed" || in.IntendedStatus == "destroyed":
		m.State = launch.StateGone
	default: // created, loading, scheduling, or running but not yet meant to
		m.State = launch.StateStarting
	}
	return m
}

// Status reads the instance: GET /instances/{id}/?owner=me; an answer of
// {"instances": null} or a 404 means it is gone.
func (p *Provider) Status(ctx context.Context, id string) (launch.Machine, error) {
	var resp struct {
		Instances *instance `json:"instances"`
	}
	err := p.v0.Do(ctx, "GET /instances/{id}/", http.MethodGet, "/instances/"+url.PathEscape(id)+"/", url.Values{"owner": {"me"}}, nil, &resp)
	if err != nil {
		return launch.Machine{}, launch.NotFound(err)
	}
	if resp.Instances == nil {
		return launch.Machine{}, fmt.Errorf("vast instance %s: %w", id, launch.ErrNotFound)
	}
	return resp.Instances.machine(), nil
}

// Find lists the instances labelled label: GET /api/v1/instances/ with
// select_filters on the label, a page at a time.
func (p *Provider) Find(ctx context.Context, label string) ([]launch.Machine, error) {
	filters, _ := json.Marshal(map[string]any{"label": map[string]any{"eq": label}})
	q := url.Values{"select_filters": {string(filters)}, "limit": {"25"}}
	var out []launch.Machine
	for page := 0; page < 100; page++ {
		var resp struct {
			Instances []instance `json:"instances"`
			NextToken string     `json:"next_token"`
		}
		if err := p.v1.Do(ctx, "GET /api/v1/instances/", http.MethodGet, "/instances/", q, nil, &resp); err != nil {
			return nil, err
		}
		for _, in := range resp.Instances {
			if in.Label == label {
				out = append(out, in.machine())
			}
		}
		if resp.NextToken == "" {
			break
		}
		q.Set("after_token", resp.NextToken)
	}
	return out, nil
}

// Stop stops the instance (its disk kept and billed).
func (p *Provider) Stop(ctx context.Context, id string) error {
	return launch.NotFound(p.v0.Do(ctx, "PUT /instances/{id}/ (stop)", http.MethodPut, "/instances/"+url.PathEscape(id)+"/", nil,
		map[string]string{"state": "stopped"}, nil))
}

// Destroy deletes the instance and its disk.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	return launch.NotFound(p.v0.Do(ctx, "DELETE /instances/{id}/", http.MethodDelete, "/instances/"+url.PathEscape(id)+"/", nil, nil, nil))
}
