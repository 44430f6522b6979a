package profile

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/mlkem"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"slices"

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
	return handshake(ctx, conn, hello, cfg, false)
}

// Handshake is Handshake with p's hello, its extensions in a new order
// when p.Permute says the browser sends them so.
func (p *Profile) Handshake(ctx context.Context, conn net.Conn, cfg *utls.Config) (*utls.UConn, error) {
	return handshake(ctx, conn, p.Hello, cfg, p.Permute)
}

func handshake(ctx context.Context, conn net.Conn, hello []byte, cfg *utls.Config, permute bool) (*utls.UConn, error) {
	spec, err := readHello(hello)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHello, err)
	}
	resumable(spec)
	if permute {
		permuteExtensions(spec.Extensions)
	}
	if cfg.NextProtos != nil {
		withProtocols(spec, cfg.NextProtos)
	}
	cfg = cfg.Clone()
	cfg.OmitEmptyPsk = true // no session in the cache: no pre_shared_key
	var keys *utls.KeySharePrivateKeys
	if sharesX25519(hello) {
		if keys, err = oneX25519Key(spec, cfg.Rand); err != nil {
			return nil, fmt.Errorf("profile: make key shares: %w", err)
		}
	}
	uc := utls.UClient(conn, cfg, utls.HelloCustom)
	if err := applyPreset(uc, spec); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHello, err)
	}
	if keys != nil {
		uc.HandshakeState.State13.KeyShareKeys = keys
	}
	if err := uc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("profile: TLS handshake: %w", err)
	}
	forgetHandshake(uc)
	return uc, nil
}

// withProtocols makes spec's ALPN offer protos, and its ALPS (application
// settings, Chrome's) only those of them it offered before, without the
// extension when none is left: Chrome offers ALPS for protocols of its
// ALPN alone (a WebSocket's http/1.1 connection has none).
func withProtocols(spec *utls.ClientHelloSpec, protos []string) {
	keep := func(ps []string) []string {
		return slices.DeleteFunc(slices.Clone(ps), func(p string) bool { return !slices.Contains(protos, p) })
	}
	spec.Extensions = slices.DeleteFunc(spec.Extensions, func(e utls.TLSExtension) bool {
		switch e := e.(type) {
		case *utls.ALPNExtension:
			e.AlpnProtocols = protos
		case *utls.ApplicationSettingsExtension:
			e.SupportedProtocols = keep(e.SupportedProtocols)
			return len(e.SupportedProtocols) == 0
		case *utls.ApplicationSettingsExtensionNew:
			e.SupportedProtocols = keep(e.SupportedProtocols)
			return len(e.SupportedProtocols) == 0
		}
		return false
	})
}

// sharesX25519 reports whether hello offers an X25519MLKEM768 key share
// and an X25519 one that carry the same X25519 key, as Go's crypto/tls
// sends them (browsers send two keys).
func sharesX25519(hello []byte) bool {
	hybrid, plain := x25519Keys(hello)
	return hybrid != nil && bytes.Equal(hybrid, plain)
}

// x25519Keys returns the X25519 key in the first record's hello's
// X25519MLKEM768 key share and the key of its X25519 share: nil for a
// share it lacks, or one of the wrong length.
func x25519Keys(hello []byte) (hybrid, plain []byte) {
	if len(hello) < 5 {
		return nil, nil
	}
	end := min(len(hello), 5+(int(hello[3])<<8|int(hello[4]))) // the first record
	m := utls.UnmarshalClientHello(hello[5:end])
	if m == nil {
		return nil, nil
	}
	for _, ks := range m.KeyShares {
		switch {
		case ks.Group == utls.X25519MLKEM768 && len(ks.Data) == mlkem.EncapsulationKeySize768+32:
			hybrid = ks.Data[mlkem.EncapsulationKeySize768:]
		case ks.Group == utls.X25519 && len(ks.Data) == 32:
			plain = ks.Data
		}
	}
	return hybrid, plain
}

// oneX25519Key fills spec's X25519MLKEM768 and X25519 key shares with one
// fresh X25519 key, as sharesX25519 found the client doing, and returns
// the private keys for the handshake. uTLS, left to itself, would make a
// key for each share: a difference the origin could see (and the cost of
// one more key).
func oneX25519Key(spec *utls.ClientHelloSpec, rnd io.Reader) (*utls.KeySharePrivateKeys, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	x, err := ecdh.X25519().GenerateKey(rnd)
	if err != nil {
		return nil, err
	}
	m, err := mlkem.GenerateKey768()
	if err != nil {
		return nil, err
	}
	for _, e := range spec.Extensions {
		if ks, ok := e.(*utls.KeyShareExtension); ok {
			for i := range ks.KeyShares {
				switch ks.KeyShares[i].Group {
				case utls.X25519MLKEM768:
					ks.KeyShares[i].Data = append(m.EncapsulationKey().Bytes(), x.PublicKey().Bytes()...)
				case utls.X25519:
					ks.KeyShares[i].Data = x.PublicKey().Bytes()
				}
			}
		}
	}
	return &utls.KeySharePrivateKeys{CurveID: utls.X25519MLKEM768, Ecdhe: x, Mlkem: m, MlkemEcdhe: x}, nil
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
// A hello with two session_ticket extensions, or a pre_shared_key that is
// not the last extension (both against RFC 8446, section 4.2), is refused
// here: uTLS would panic on it when building the hello.
func readHello(hello []byte) (*utls.ClientHelloSpec, error) {
	spec, err := (&utls.Fingerprinter{AllowBluntMimicry: true, RealPSKResumption: true}).FingerprintClientHello(hello)
	if err != nil {
		return nil, err
	}
	tickets := 0
	for i, e := range spec.Extensions {
		switch e.(type) {
		case utls.ISessionTicketExtension:
			if tickets++; tickets > 1 {
				return nil, errors.New("more than one session_ticket extension")
			}
		case utls.PreSharedKeyExtension:
			if i != len(spec.Extensions)-1 {
				return nil, errors.New("pre_shared_key is not the last extension")
			}
		}
	}
	return spec, nil
}

// applyPreset is uc.ApplyPreset(spec) with uTLS's assertions, which panic
// on a spec it cannot build, turned into errors: the spec is a client's.
// readHello refuses the hellos known to reach one.
func applyPreset(uc *utls.UConn, spec *utls.ClientHelloSpec) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("uTLS cannot build the hello: %v", r)
		}
	}()
	return uc.ApplyPreset(spec)
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

// permuteExtensions puts exts in a new random order, as Chrome does on
// every connection since version 110 (BoringSSL's extension
// permutation): all but GREASE, padding and the pre-shared key, which
// keep their places (the key must come last).
func permuteExtensions(exts []utls.TLSExtension) {
	var moved []int
	for i, e := range exts {
		switch e.(type) {
		case *utls.UtlsGREASEExtension, *utls.UtlsPaddingExtension, *utls.UtlsPreSharedKeyExtension, utls.PreSharedKeyExtension:
		default:
			moved = append(moved, i)
		}
	}
	mrand.Shuffle(len(moved), func(i, j int) {
		exts[moved[i]], exts[moved[j]] = exts[moved[j]], exts[moved[i]]
	})
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
