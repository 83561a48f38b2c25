package metrics

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// shutdownGrace bounds how long Serve waits for scrapes in progress once its
// context ends.
const shutdownGrace = 5 * time.Second

// CheckAddr returns an error unless addr (HOST:PORT) may be served with
// token: an address that is not loopback (127.0.0.0/8, ::1, localhost) needs
// a token, because RunPod's proxy makes every HTTP port of a pod public. The
// error names the settings, never the token.
func CheckAddr(addr, token string) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics: --metrics-addr=%s: want HOST:PORT, e.g. 127.0.0.1:9400: %w", addr, err)
	}
	if token != "" || isLoopback(h) {
		return nil
	}
	return fmt.Errorf("metrics: --metrics-addr=%s is not a loopback address and --metrics-token is not set: "+
		"RunPod's proxy makes every HTTP port public; set --metrics-token (BATON_METRICS_TOKEN) or listen on 127.0.0.1", addr)
}

// isLoopback reports whether host names only loopback: "localhost" or an
// IP address of 127.0.0.0/8 or ::1. An empty host (every interface) is not.
func isLoopback(h string) bool {
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// Handler serves GET /metrics (the registry, in the format the scraper
// asks for) and GET /healthz ("ok"). With a token, every request needs
// "Authorization: Bearer <token>", else it gets 401.
func (m *Metrics) Handler(token string, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{log},
		ErrorHandling: promhttp.ContinueOnError, // one broken collector must not hide the others
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	if token == "" {
		return mux
	}
	return requireToken(token, mux)
}

// requireToken lets through only requests that carry the bearer token. The
// comparison is of SHA-256 digests in constant time, so neither the token's
// bytes nor its length leak through timing.
func requireToken(token string, next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || !strings.EqualFold(scheme, "Bearer") || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="baton metrics"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <the --metrics-token>", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// promLogger passes promhttp's error messages to slog.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}

// Server is the metrics endpoint on a bound listener.
type Server struct {
	ln      net.Listener
	srv     *http.Server
	log     *slog.Logger
	guarded bool // a token is required
}

// Listen checks addr against the token rule (see CheckAddr) and binds it;
// port 0 picks a free port, which Addr tells. Serve then serves m.
func (m *Metrics) Listen(addr, token string, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckAddr(addr, token); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on --metrics-addr=%s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           m.Handler(token, log),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return &Server{ln: ln, srv: srv, log: log, guarded: token != ""}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve serves until ctx ends, then shuts down, letting scrapes in progress
// finish for a few seconds. It returns nil after a shutdown that ctx asked
// for, and an error if serving failed.
func (s *Server) Serve(ctx context.Context) error {
	s.log.Info("metrics endpoint", "url", "http://"+s.ln.Addr().String()+"/metrics", "token_required", s.guarded)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics: serve %s: %w", s.ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("metrics: shut down %s: %w", s.ln.Addr(), err)
	}
	return nil
}

// Serve listens on addr and serves m until ctx ends (Listen, then
// Server.Serve).
func (m *Metrics) Serve(ctx context.Context, addr, token string, log *slog.Logger) error {
	s, err := m.Listen(addr, token, log)
	if err != nil {
		return err
	}
	return s.Serve(ctx)
}
