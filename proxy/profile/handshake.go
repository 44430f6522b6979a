package profile

import (
	"context"
	"errors"
	"fmt"
	"net"

	utls "github.com/refraction-networking/utls"
)

// ErrHello is a ClientHello that cannot be sent again: it does not parse
// as one, or uTLS cannot build it.
var ErrHello = errors.New("profile: unusable ClientHello")

// Handshake runs a TLS client handshake on conn that sends hello, the
// ClientHello records a browser or the proxy's client sent, as its own: the
// same cipher suites, extensions in the same order with the same data
// (extensions uTLS does not know are sent as they were), groups, key share
// groups, ALPN and GREASE positions; fresh randoms, keys and session ID, the
// server name and verification of cfg. A TLS 1.3 session is resumed, as a
// browser resumes, from cfg.ClientSessionCache only: the hello's own
// pre-shared key (a ticket the sender got elsewhere) is never sent on. The
// caller closes conn on error. cfg is not changed; its NextProtos, when
// set, replace the protocols of the hello's ALPN extension.
func Handshake(ctx context.Context, conn net.Conn, hello []byte, cfg *utls.Config) (*utls.UConn, error) {
	spec, err := readHello(hello)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHello, err)
	}
	resumable(spec)
	if cfg.NextProtos != nil {
		for _, e := range spec.Extensions {
			if alpn, ok := e.(*utls.ALPNExtension); ok {
				alpn.AlpnProtocols = cfg.NextProtos
			}
		}
	}
	cfg = cfg.Clone()
	cfg.OmitEmptyPsk = true // no session in the cache: no pre_shared_key
	uc := utls.UClient(conn, cfg, utls.HelloCustom)
	if err := uc.ApplyPreset(spec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHello, err)
	}
	if err := uc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("profile: TLS handshake: %w", err)
	}
	forgetHandshake(uc)
	return uc, nil
}

// forgetHandshake lets go of what only the handshake needed, which uTLS
// keeps for the connection's life (crypto/tls does not): the ephemeral
// private keys, whose use is over (an ML-KEM key alone is 6.7 KB), both
// hellos and the transcript. A connection idles for minutes in a session.
func forgetHandshake(uc *utls.UConn) {
	hs := &uc.HandshakeState
	hs.Hello, hs.ServerHello = nil, nil
	hs.State13.KeyShareKeys, hs.State13.EcdheKey, hs.State13.KEMKey = nil, nil, nil
	hs.State13.Transcript = nil
	uc.Extensions = nil
}

// readHello rebuilds the spec of ClientHello records with uTLS: unknown
// extensions kept as they were, a pre_shared_key left for the session's
// own cache to fill. Every reader of a hello in this package uses it, so
// that they agree on what is readable.
func readHello(hello []byte) (*utls.ClientHelloSpec, error) {
	return (&utls.Fingerprinter{AllowBluntMimicry: true, RealPSKResumption: true}).FingerprintClientHello(hello)
}

// resumable gives a TLS 1.3 hello that offers PSK key exchange but has no
// pre_shared_key extension (a browser's first hello) one at its end, where
// a browser resuming a session puts it.
func resumable(spec *utls.ClientHelloSpec) {
	modes := false
	for _, e := range spec.Extensions {
		switch e.(type) {
		case *utls.PSKKeyExchangeModesExtension:
			modes = true
		case *utls.UtlsPreSharedKeyExtension, utls.PreSharedKeyExtension:
			return
		}
	}
	if modes {
		spec.Extensions = append(spec.Extensions, &utls.UtlsPreSharedKeyExtension{})
	}
}

// ALPN returns the protocols hello's ALPN extension offers; nil when it
// has none or does not parse.
func ALPN(hello []byte) []string {
	spec, err := readHello(hello)
	if err != nil {
		return nil
	}
	for _, e := range spec.Extensions {
		if alpn, ok := e.(*utls.ALPNExtension); ok {
			return alpn.AlpnProtocols
		}
	}
	return nil
}
