package proxy

import "github.com/sessionproxy/sessionproxy/proxy/proxytest"

// The shared test helpers (proxy/proxytest) under the names this
// package's tests use.
var (
	newTestCA            = proxytest.NewCA
	newTestLeaf          = proxytest.NewLeaf
	startTLSOrigin       = proxytest.StartTLSOrigin
	tlsOriginWithCA      = proxytest.StartTLSOriginWithCA
	startGoproxyUpstream = proxytest.StartGoproxyUpstream
	startSOCKS5          = proxytest.StartSOCKS5
	closedPort           = proxytest.ClosedPort
	assertNoSecret       = proxytest.AssertNoSecret
	discardServerLog     = proxytest.DiscardLog()
)
