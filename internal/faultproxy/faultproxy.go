// Package faultproxy is a TCP proxy for tests that sits between a client and
// a server (an S3 server on loopback, say) and breaks connections the way
// networks do: it cuts them mid-transfer, and it can play an outage.
//
// A proxy cuts a connection once it has carried a set number of bytes in
// either direction, drawn for each connection from [n/2, n] so that the cuts
// land at varied offsets, until it has cut Options.Cuts connections; after
// that it passes everything through, so that a transfer that retries
// finishes.
package faultproxy

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// Options says how a proxy breaks connections. The zero value breaks none.
type Options struct {
	// CutAfterBytes, if > 0, cuts a connection once it has carried about
	// this many bytes from client to server or from server to client: the
	// exact count is drawn for each connection, uniformly from
	// [CutAfterBytes/2, CutAfterBytes]. The bytes up to that count get
	// through; the rest do not.
	CutAfterBytes int64
	// Cuts is how many connections to cut in all; after that the proxy
	// passes everything through. 0 means no limit.
	Cuts int
	// Seed seeds the proxy's math/rand/v2 source, so that the i-th
	// connection is cut at the same offset on every run.
	Seed uint64
	// Reset makes a cut, a refused connection or an outage's close send a
	// TCP RST (SO_LINGER 0) rather than a FIN: the peer sees "connection
	// reset by peer" and may lose bytes already sent to it.
	Reset bool
	// BytesPerSecond, if > 0, slows the proxy to about that many bytes a
	// second in each direction, all connections together: each block of
	// up to 32 KiB waits for the next tick of its direction's clock.
	BytesPerSecond float64
}

// Proxy is a running proxy. Its methods are safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	opts   Options
	ctx    context.Context // done when the proxy stops
	stop   context.CancelFunc
	wg     sync.WaitGroup

	upTick, downTick <-chan time.Time // with BytesPerSecond: a tick a block; else nil

	mu      sync.Mutex
	rng     *rand.Rand
	down    bool
	stopped bool
	live    map[*conn]struct{}
	conns   int
	cuts    int
	refused int
}

// Start starts a proxy to target (host:port) listening on 127.0.0.1:0. It
// stops in t.Cleanup, closing every connection still open.
func Start(t testing.TB, target string, opts Options) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("faultproxy: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	p := &Proxy{
		ln:     ln,
		target: target,
		opts:   opts,
		ctx:    ctx,
		stop:   stop,
		rng:    rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15)),
		live:   map[*conn]struct{}{},
	}
	if opts.BytesPerSecond > 0 {
		every := time.Duration(blockSize / opts.BytesPerSecond * float64(time.Second))
		up, down := time.NewTicker(every), time.NewTicker(every)
		t.Cleanup(func() { up.Stop(); down.Stop() })
		p.upTick, p.downTick = up.C, down.C
	}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// blockSize is what pump moves at a time.
const blockSize = 32 << 10

// Addr is the address the proxy listens on, as host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// URL is "http://" followed by Addr.
func (p *Proxy) URL() string { return "http://" + p.Addr() }

// Cuts returns how many connections the proxy has cut after CutAfterBytes.
// Connections closed by SetDown or refused while down are not counted.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Conns returns how many connections the proxy has accepted, those refused
// while down included.
func (p *Proxy) Conns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conns
}

// Refused returns how many connections the proxy has refused while down, or
// because the target could not be dialed.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// SetDown starts (true) or ends (false) an outage. While down, the proxy
// accepts new connections and closes them at once, and SetDown(true) closes
// every connection open when it is called.
func (p *Proxy) SetDown(down bool) {
	p.mu.Lock()
	p.down = down
	var open []*conn
	if down {
		for c := range p.live {
			open = append(open, c)
		}
	}
	p.mu.Unlock()
	for _, c := range open {
		c.cut(p.opts.Reset)
	}
}

func (p *Proxy) close() {
	p.mu.Lock()
	p.stopped = true
	open := make([]*conn, 0, len(p.live))
	for c := range p.live {
		open = append(open, c)
	}
	p.mu.Unlock()
	p.stop()
	p.ln.Close()
	for _, c := range open {
		c.cut(false)
	}
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // a transient accept error; the listener is still open
		}
		p.mu.Lock()
		p.conns++
		// Draw for every connection, so that the i-th one's offset depends
		// on the seed and i alone.
		limit := int64(-1)
		if n := p.opts.CutAfterBytes; n > 0 {
			limit = max(1, n/2+p.rng.Int64N(n-n/2+1))
		}
		refuse := p.down || p.stopped
		if refuse {
			p.refused++
		}
		p.mu.Unlock()
		if refuse {
			closeConn(client, p.opts.Reset)
			continue
		}
		p.wg.Add(1)
		go p.serve(client, limit)
	}
}

// serve dials the target for client and pumps bytes both ways.
func (p *Proxy) serve(client net.Conn, limit int64) {
	defer p.wg.Done()
	var d net.Dialer
	server, err := d.DialContext(p.ctx, "tcp", p.target)
	if err != nil {
		p.mu.Lock()
		p.refused++
		p.mu.Unlock()
		closeConn(client, p.opts.Reset)
		return
	}
	c := &conn{p: p, client: client, server: server, limit: limit, armed: limit > 0}
	p.mu.Lock()
	if p.down || p.stopped {
		// The outage began, or the proxy stopped, while we dialed.
		p.mu.Unlock()
		c.cut(p.opts.Reset)
		return
	}
	p.live[c] = struct{}{}
	p.mu.Unlock()

	var pumps sync.WaitGroup
	pumps.Go(func() { c.pump(server, client, p.upTick) })
	pumps.Go(func() { c.pump(client, server, p.downTick) })
	pumps.Wait()
	client.Close()
	server.Close()
	p.mu.Lock()
	delete(p.live, c)
	p.mu.Unlock()
}

// conn is one proxied connection.
type conn struct {
	p              *Proxy
	client, server net.Conn
	limit          int64 // bytes in one direction before the cut

	mu    sync.Mutex
	armed bool // still to be cut after limit bytes
	cutOK bool // cut already
}

// pump copies src to dst until src ends, then half-closes dst; a non-nil
// tick paces it, a block a tick. If the connection is armed, it stops after
// limit bytes and cuts the connection.
func (c *conn) pump(dst, src net.Conn, tick <-chan time.Time) {
	buf := make([]byte, blockSize)
	var carried int64
	for {
		n, rerr := src.Read(buf)
		if n > 0 && tick != nil {
			select {
			case <-tick:
			case <-c.p.ctx.Done():
				c.cut(false)
				return
			}
		}
		if n > 0 {
			chunk := buf[:n]
			cutHere := false
			if c.isArmed() && carried+int64(n) >= c.limit {
				chunk = buf[:c.limit-carried]
				cutHere = true
			}
			if _, err := dst.Write(chunk); err != nil {
				c.cut(false)
				return
			}
			carried += int64(len(chunk))
			if cutHere {
				if c.claimCut() {
					c.cut(c.p.opts.Reset)
					return
				}
				// The cut budget is spent: send the rest.
				if _, err := dst.Write(buf[len(chunk):n]); err != nil {
					c.cut(false)
					return
				}
				carried += int64(n - len(chunk))
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				if cw, ok := dst.(interface{ CloseWrite() error }); ok {
					cw.CloseWrite()
					return
				}
			}
			c.cut(false)
			return
		}
	}
}

func (c *conn) isArmed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.armed
}

// claimCut disarms the connection and reports whether the proxy's cut budget
// allows cutting it, counting the cut if so.
func (c *conn) claimCut() bool {
	c.mu.Lock()
	if !c.armed {
		c.mu.Unlock()
		return false
	}
	c.armed = false
	c.mu.Unlock()
	p := c.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.opts.Cuts > 0 && p.cuts >= p.opts.Cuts {
		return false
	}
	p.cuts++
	return true
}

// cut closes both sides of the connection, with an RST if reset is set.
func (c *conn) cut(reset bool) {
	c.mu.Lock()
	c.armed = false
	done := c.cutOK
	c.cutOK = true
	c.mu.Unlock()
	if done {
		return
	}
	closeConn(c.client, reset)
	closeConn(c.server, reset)
}

func closeConn(c net.Conn, reset bool) {
	if tc, ok := c.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	c.Close()
}
