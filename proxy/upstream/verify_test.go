package upstream

import (
	"crypto/x509"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	utls "github.com/refraction-networking/utls"

	"github.com/sessionproxy/sessionproxy/proxy/profile"
	"github.com/sessionproxy/sessionproxy/proxy/proxytest"
)

// parsedChain parses a tls.Certificate's chain as a handshake shows it.
func parsedChain(t *testing.T, der [][]byte) []*x509.Certificate {
	t.Helper()
	certs := make([]*x509.Certificate, len(der))
	for i, d := range der {
		c, err := x509.ParseCertificate(d)
		if err != nil {
			t.Fatal(err)
		}
		certs[i] = c
	}
	return certs
}

// TestVerifyCache: a chain that verified for a name is taken again for
// that name alone, only within its validity and verifiedTTL; a chain that
// failed is never remembered; the cache stays within maxVerified.
func TestVerifyCache(t *testing.T) {
	caPEM, caKey, roots := proxytest.NewCA(t)
	leaf := proxytest.NewLeaf(t, caPEM, caKey, "a.test", "*.wild.test")
	certs := parsedChain(t, leaf.Certificate)
	otherPEM, otherKey, _ := proxytest.NewCA(t)
	untrusted := parsedChain(t, proxytest.NewLeaf(t, otherPEM, otherKey, "a.test").Certificate)
	now := time.Now()
	v := newVerifyCache(roots)

	for _, tc := range []struct {
		what       string
		name       string
		certs      []*x509.Certificate
		at         time.Time
		wantCached bool
		wantErr    bool
	}{
		{"first", "a.test", certs, now, false, false},
		{"again", "a.test", certs, now.Add(time.Minute), true, false},
		{"another name, same chain", "b.test", certs, now, false, true},
		{"after the leaf expired", "a.test", certs, certs[0].NotAfter.Add(time.Second), false, true},
		{"before it was valid", "a.test", certs, certs[0].NotBefore.Add(-time.Second), false, true},
		{"after the TTL: verified again", "a.test", certs, now.Add(verifiedTTL + time.Minute), false, false},
		{"remembered anew", "a.test", certs, now.Add(verifiedTTL + 2*time.Minute), true, false},
		{"leaf alone, its CA not sent: verifies from the roots", "a.test", certs[:1], now, false, false},
		{"untrusted", "a.test", untrusted, now, false, true},
		{"untrusted again", "a.test", untrusted, now, false, true},
		{"no certificate", "a.test", nil, now, false, true},
	} {
		cached, err := v.verify(tc.name, tc.certs, tc.at)
		if cached != tc.wantCached || (err != nil) != tc.wantErr {
			t.Errorf("%s: cached %v, err %v; want cached %v, error %v", tc.what, cached, err, tc.wantCached, tc.wantErr)
		}
		var cve *utls.CertificateVerificationError
		if err != nil && !errors.As(err, &cve) {
			t.Errorf("%s: error %T %v is not a *utls.CertificateVerificationError", tc.what, err, err)
		}
	}

	for i := range maxVerified + 10 {
		if _, err := v.verify(fmt.Sprintf("h%d.wild.test", i), certs, now); err != nil {
			t.Fatal(err)
		}
	}
	v.mu.Lock()
	n := len(v.m)
	v.mu.Unlock()
	if n > maxVerified {
		t.Errorf("the cache holds %d chains, more than %d", n, maxVerified)
	}
}

// TestIdentityVerifiesOrigins: a session with an identity on the wire
// refuses an origin the roots do not vouch for (a TLS error), whatever
// another session verified before; sessions that trust it share one
// verification.
func TestIdentityVerifiesOrigins(t *testing.T) {
	origin, roots := proxytest.StartTLSOrigin(t, helloHandler(new(atomic.Int64)))
	host := origin.Listener.Addr().String()
	_, _, otherRoots := proxytest.NewCA(t)

	for _, mode := range []string{profile.Mirror, profile.Chrome} {
		ts := newTestTransports(t, Options{RootCAs: otherRoots})
		tr, err := ts.Get("s", "", mode)
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = proxytest.GetThrough(t, tr, origin.URL)
		checkUpstreamError(t, mode+", untrusted", Classify(err, "", host), KindTLS, "origin "+host)
	}

	ts := newTestTransports(t, Options{RootCAs: roots})
	for _, id := range []string{"s1", "s2", "s3"} {
		tr, err := ts.Get(id, "", profile.Chrome)
		if err != nil {
			t.Fatal(err)
		}
		if code, _, err := proxytest.GetThrough(t, tr, origin.URL); err != nil || code != 200 {
			t.Fatalf("%s: %d %v", id, code, err)
		}
	}
	ts.opts.verified.mu.Lock()
	n := len(ts.opts.verified.m)
	ts.opts.verified.mu.Unlock()
	if n != 1 {
		t.Errorf("three sessions to one origin left %d verifications, want 1", n)
	}
}
