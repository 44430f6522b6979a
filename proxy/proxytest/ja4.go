package proxytest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// errHello is a ClientHello JA4 cannot read.
var errHello = errors.New("proxytest: not a TLS ClientHello")

// JA4 returns the JA4 fingerprint (FoxIO's, TCP) of the ClientHello
// records hello: t, the TLS version (the highest of supported_versions),
// d or i (a server name or not), the counts of cipher suites and
// extensions, the first and last characters of the first ALPN value; then
// the truncated SHA-256 of the sorted cipher suites, and of the sorted
// extensions (without SNI and ALPN) with the signature algorithms in
// order. GREASE values are ignored throughout.
func JA4(hello []byte) (string, error) {
	msg, err := helloMessage(hello)
	if err != nil {
		return "", err
	}
	// legacy_version(2) random(32) session_id
	p := msg[34:]
	var ok bool
	var suites, exts []byte
	if _, p, ok = vec(p, 1); !ok {
		return "", errHello
	}
	if suites, p, ok = vec(p, 2); !ok {
		return "", errHello
	}
	if _, p, ok = vec(p, 1); !ok { // compression methods
		return "", errHello
	}
	if exts, _, ok = vec(p, 2); !ok {
		return "", errHello
	}
	var ciphers []string
	for i := 0; i+1 < len(suites); i += 2 {
		if v := binary.BigEndian.Uint16(suites[i:]); !grease(v) {
			ciphers = append(ciphers, fmt.Sprintf("%04x", v))
		}
	}
	x, ok := readExtensions(exts)
	if !ok {
		return "", errHello
	}
	version, ids := x.version, x.ids
	if version == "00" {
		version = tlsVersion(binary.BigEndian.Uint16(msg))
	}
	slices.Sort(ciphers)
	slices.Sort(ids)
	c := strings.Join(ids, ",")
	if len(x.sigalgs) > 0 {
		c += "_" + strings.Join(x.sigalgs, ",")
	}
	return fmt.Sprintf("t%s%s%02d%02d%s_%s_%s", version, x.sni, min(len(ciphers), 99), min(x.count, 99), x.alpn,
		hash12(strings.Join(ciphers, ",")), hash12(c)), nil
}

// helloExtensions is what JA4 takes from a hello's extensions.
type helloExtensions struct {
	version, sni, alpn string
	count              int      // extensions, GREASE left out
	ids                []string // their types in hex, without SNI and ALPN
	sigalgs            []string // signature algorithms in order, in hex
}

// readExtensions reads the extensions block of a ClientHello.
func readExtensions(exts []byte) (x helloExtensions, ok bool) {
	x.version, x.sni, x.alpn = "00", "i", "00"
	for len(exts) >= 4 {
		typ := binary.BigEndian.Uint16(exts)
		var data []byte
		if data, exts, ok = vec(exts[2:], 2); !ok {
			return x, false
		}
		if grease(typ) {
			continue
		}
		x.count++
		switch typ {
		case 0x0000:
			x.sni = "d"
		case 0x0010:
			if list, _, ok := vec(data, 2); ok {
				if first, _, ok := vec(list, 1); ok && len(first) > 0 {
					x.alpn = alpnChars(first)
				}
			}
		case 0x000d:
			if list, _, ok := vec(data, 2); ok {
				for i := 0; i+1 < len(list); i += 2 {
					if v := binary.BigEndian.Uint16(list[i:]); !grease(v) {
						x.sigalgs = append(x.sigalgs, fmt.Sprintf("%04x", v))
					}
				}
			}
		case 0x002b:
			if list, _, ok := vec(data, 1); ok {
				best := uint16(0)
				for i := 0; i+1 < len(list); i += 2 {
					if v := binary.BigEndian.Uint16(list[i:]); !grease(v) && v > best {
						best = v
					}
				}
				x.version = tlsVersion(best)
			}
		}
		if typ != 0x0000 && typ != 0x0010 {
			x.ids = append(x.ids, fmt.Sprintf("%04x", typ))
		}
	}
	return x, true
}

// helloMessage returns the ClientHello handshake message's body from its
// records.
func helloMessage(records []byte) ([]byte, error) {
	var msg []byte
	for len(records) >= 5 && records[0] == 0x16 {
		n := int(binary.BigEndian.Uint16(records[3:]))
		if len(records) < 5+n {
			break
		}
		msg = append(msg, records[5:5+n]...)
		records = records[5+n:]
	}
	if len(msg) < 4 || msg[0] != 1 {
		return nil, errHello
	}
	n := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
	if len(msg) < 4+n || n < 35 {
		return nil, errHello
	}
	return msg[4 : 4+n], nil
}

// vec reads a vector with a length prefix of n bytes.
func vec(p []byte, n int) (v, rest []byte, ok bool) {
	if len(p) < n {
		return nil, nil, false
	}
	l := 0
	for _, b := range p[:n] {
		l = l<<8 | int(b)
	}
	if len(p) < n+l {
		return nil, nil, false
	}
	return p[n : n+l], p[n+l:], true
}

func grease(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

func tlsVersion(v uint16) string {
	switch v {
	case 0x0304:
		return "13"
	case 0x0303:
		return "12"
	case 0x0302:
		return "11"
	case 0x0301:
		return "10"
	}
	return "00"
}

// alpnChars is JA4's two characters of an ALPN value: its first and last,
// or the first and last hex digits when either is not alphanumeric.
func alpnChars(v []byte) string {
	alnum := func(b byte) bool { return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' }
	if alnum(v[0]) && alnum(v[len(v)-1]) {
		return string(v[0]) + string(v[len(v)-1])
	}
	h := hex.EncodeToString(v)
	return h[:1] + h[len(h)-1:]
}

func hash12(s string) string {
	if s == "" {
		return "000000000000"
	}
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:12]
}
