package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
)

// eofConn remembers that the client's side of a connection ended cleanly
// (a read returned io.EOF): a client that half-closed its write side
// (shutdown(SHUT_WR)) after sending its request. Safe for concurrent use.
type eofConn struct {
	net.Conn
	eof atomic.Bool
}

func (c *eofConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, io.EOF) {
		c.eof.Store(true) // before net/http sees it and cancels the request
	}
	return n, err
}

// eofListener hands out its connections as eofConns.
type eofListener struct{ net.Listener }

func (l eofListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &eofConn{Conn: c}, nil
}

// keepOnHalfClose returns the context for r that is not cancelled when the
// client merely half-closes after its request: net/http cancels a request's
// context on any end of the client's read side, a clean EOF included, and
// the client would get "client closed the request" although it still reads.
// Any other end of the connection (a reset, a read error) still cancels it,
// as does the end of the handler (call stop then). A CONNECT is left alone. A client that closes
// both sides with a FIN looks the same as one that half-closes: its request
// runs on until writing the response to it fails.
func keepOnHalfClose(r *http.Request) (_ context.Context, stop func()) {
	cc := connOf(r)
	if cc == nil || r.Method == http.MethodConnect {
		return r.Context(), func() {}
	}
	ec, ok := cc.Conn.(*eofConn)
	if !ok {
		return r.Context(), func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
	unhook := context.AfterFunc(r.Context(), func() {
		if !ec.eof.Load() {
			cancel()
		}
	})
	return ctx, func() {
		unhook()
		cancel()
	}
}
