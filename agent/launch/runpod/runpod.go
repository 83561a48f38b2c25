// Package runpod is the launch provider of RunPod pods, through RunPod's
// REST API v2 (runpod/docs, api-reference-v2/openapi.json): the GPU
// catalog for types and prices (GET /v2/catalog/gpus), POST /v2/pods to
// create, GET /v2/pods and /v2/pods/{id} to look pods up, POST
// /v2/pods/{id}/action to stop and DELETE /v2/pods/{id} to delete.
package runpod

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/batonrun/baton/agent/launch"
	"github.com/batonrun/baton/agent/platform"
)

// Options configure the provider.
type Options struct {
	// APIOptions: the base URL with its /v2 ("": platform.DefaultRunPodURL) and the key (RUNPOD_API_KEY).
	launch.APIOptions
	// Cloud is secure or community.
	Cloud string
}

// Provider rents RunPod pods.
type Provider struct {
	api   launch.API
	cloud string // SECURE or COMMUNITY
}

// New returns the provider; it fails without a key.
func New(o Options) (*Provider, error) {
	api, err := launch.NewAPI("RunPod", o.BaseURL, platform.DefaultRunPodURL, o.Key, "RUNPOD_API_KEY", o.Client)
	if err != nil {
		return nil, err
	}
	cloud := "SECURE"
	if o.Cloud == "community" {
		cloud = "COMMUNITY"
	}
	return &Provider{api: api, cloud: cloud}, nil
}

// Name is "runpod".
func (p *Provider) Name() string { return "runpod" }

// gpuType is one entry of the catalog (components.schemas.GpuType).
type gpuType struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Price struct {
		Secure    float64 `json:"secure"`
		Community float64 `json:"community"`
	} `json:"price"`
	MaxCount struct {
		Secure    int `json:"secure"`
		Community int `json:"community"`
	} `json:"maxCount"`
	Availability string `json:"availability"`
}

// Offers reads the GPU catalog with the pod stock for the cloud and the
// GPU count: one offer per GPU type in stock, priced per GPU times the
// count. RunPod places a pod itself, so an offer names no machine.
func (p *Provider) Offers(ctx context.Context, req launch.Request) ([]launch.Offer, error) {
	q := url.Values{"include": {"AVAILABILITY"}, "product": {"POD"}, "count": {strconv.Itoa(req.GPUCount)}, "cloud": {p.cloud}}
	var resp struct {
		GPUs []gpuType `json:"gpus"`
	}
	if err := p.api.Do(ctx, "GET /v2/catalog/gpus", http.MethodGet, "/catalog/gpus", q, nil, &resp); err != nil {
		return nil, err
	}
	var out []launch.Offer
	for _, g := range resp.GPUs {
		price, most := g.Price.Secure, g.MaxCount.Secure
		if p.cloud == "COMMUNITY" {
			price, most = g.Price.Community, g.MaxCount.Community
		}
		if g.Availability == "NONE" || g.Availability == "" || price <= 0 || most < req.GPUCount ||
			!(launch.MatchGPU(g.ID, req.GPUs) || launch.MatchGPU(g.Name, req.GPUs)) {
			continue
		}
		out = append(out, launch.Offer{Provider: "runpod", ID: g.ID, GPU: g.Name, GPUCount: req.GPUCount,
			PricePerHour: price * float64(req.GPUCount), Where: strings.ToLower(p.cloud) + " cloud"})
	}
	return out, nil
}

// pod is what the API says of a pod (components.schemas.Pod).
type pod struct {
	ID     string  `json:"id"`
	Name   string  `json:"name"`
	Status string  `json:"status"`
	Cost   float64 `json:"cost"`
}

func (p pod) machine() launch.Machine {
	m := launch.Machine{Provider: "runpod", ID: p.ID, Label: p.Name, PricePerHour: p.Cost}
	switch p.Status {
	case "RUNNING":
		m.State = launch.StateRunning
	case "EXITED", "ERROR":
		m.State = launch.StateStopped
	case "TERMINATED":
		m.State = launch.StateGone
	default: // PROVISIONING, STARTING
		m.State = launch.StateStarting
	}
	return m
}

// createBody is POST /v2/pods's body (components.schemas.CreatePodRequest).
type createBody struct {
	Name  string            `json:"name"`
	Image string            `json:"image"`
	Args  string            `json:"args"`
	Disk  int               `json:"disk"`
	Env   map[string]string `json:"env,omitempty"`
	Cloud string            `json:"cloud"`
	GPU   struct {
		ID    string `json:"id"`
		Count int    `json:"count"`
	} `json:"gpu"`
}

// Create creates a pod named by the label, of the offer's GPU type, with
// the trainer's command as the arguments of the image's entrypoint (v2
// sets no entrypoint: the image's must be baton run --, as in images/) and
// the run's settings as BATON_* variables.
// A create that got no answer or a 5xx wraps launch.ErrUncertain.
func (p *Provider) Create(ctx context.Context, o launch.Offer, h launch.Host) (launch.Machine, error) {
	if h.Detach {
		return launch.Machine{}, errors.New("runpod: launch.vast_runtype ssh is Vast's; a pod runs baton as its entrypoint")
	}
	b := createBody{Name: h.Label, Image: h.Image, Args: launch.ShellJoin(h.Args), Disk: h.DiskGB, Env: h.Env, Cloud: p.cloud}
	b.GPU.ID, b.GPU.Count = o.ID, o.GPUCount
	var got pod
	if err := p.api.Do(ctx, "POST /v2/pods", http.MethodPost, "/pods", nil, b, &got); err != nil {
		return launch.Machine{}, launch.Uncertain(err)
	}
	m := got.machine()
	if m.PricePerHour == 0 {
		m.PricePerHour = o.PricePerHour
	}
	return m, nil
}

// Find lists the account's pods and returns those named label.
func (p *Provider) Find(ctx context.Context, label string) ([]launch.Machine, error) {
	var resp struct {
		Pods []pod `json:"pods"`
	}
	if err := p.api.Do(ctx, "GET /v2/pods", http.MethodGet, "/pods", nil, nil, &resp); err != nil {
		return nil, err
	}
	var out []launch.Machine
	for _, pd := range resp.Pods {
		if pd.Name == label && pd.Status != "TERMINATED" {
			out = append(out, pd.machine())
		}
	}
	return out, nil
}

// Status reads the pod; launch.ErrNotFound once it is gone.
func (p *Provider) Status(ctx context.Context, id string) (launch.Machine, error) {
	var got pod
	if err := p.api.Do(ctx, "GET /v2/pods/{id}", http.MethodGet, "/pods/"+url.PathEscape(id), nil, nil, &got); err != nil {
		return launch.Machine{}, launch.NotFound(err)
	}
	return got.machine(), nil
}

// Stop stops the pod: POST /v2/pods/{id}/action {"action":"stop"}.
func (p *Provider) Stop(ctx context.Context, id string) error {
	return launch.NotFound(p.api.Do(ctx, "POST /v2/pods/{id}/action (stop)", http.MethodPost, "/pods/"+url.PathEscape(id)+"/action", nil,
		map[string]string{"action": "stop"}, nil))
}

// Destroy deletes the pod: DELETE /v2/pods/{id}.
func (p *Provider) Destroy(ctx context.Context, id string) error {
	return launch.NotFound(p.api.Do(ctx, "DELETE /v2/pods/{id}", http.MethodDelete, "/pods/"+url.PathEscape(id), nil, nil, nil))
}
