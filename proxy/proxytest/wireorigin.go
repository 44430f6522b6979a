package proxytest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"testing"

	utls "github.com/refraction-networking/utls"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// WireRecord is what a WireOrigin received on one connection.
type WireRecord struct {
	Hello []byte // the ClientHello records; nil over plain HTTP
	JA4   string // of Hello
	Path  string // of the request
	ALPN  string // the protocol TLS agreed on
	// Head is an HTTP/1.1 request head exactly as it came.
	Head string
	// Preface is an HTTP/2 client's SETTINGS (in order), connection
	// WINDOW_UPDATE and PRIORITY frames, in the usual fingerprint form:
	// "1:65536;2:0|15663105|3:0:0:201,5:0:0:101" ("0" for none).
	Preface string
	// Fields are an HTTP/2 request's field names in order, pseudo-headers
	// included, and "priority E:D:W" when its HEADERS had one.
	Fields []string
	// Values are an HTTP/2 request's regular fields with their values.
	Values map[string][]string
}

// WireOrigin is an origin that records what its clients put on the wire,
// one request per connection, and answers each with "ok" and no Date or
// Content-Type, over HTTP/1.1 or HTTP/2 as the client's ALPN asks. Make
// one with StartWireOrigin.
type WireOrigin struct {
	Addr    string         // host:port on loopback
	Roots   *x509.CertPool // trusts its certificate (for 127.0.0.1 and "localhost")
	CAPEM   []byte         // the CA of Roots, PEM
	records chan WireRecord
	stop    chan struct{} // closed when the test ends: no record is waited on
}

// StartWireOrigin starts a WireOrigin, over TLS unless plain, until the
// test ends.
func StartWireOrigin(t testing.TB, plain bool) *WireOrigin {
	t.Helper()
	caPEM, keyPEM, pool := NewCA(t)
	leaf := NewLeaf(t, caPEM, keyPEM, "127.0.0.1", "localhost")
	o := &WireOrigin{Roots: pool, CAPEM: caPEM, records: make(chan WireRecord, 64), stop: make(chan struct{})}
	o.Addr = ServeConns(t, func(c net.Conn) { o.serve(c, leaf, plain) })
	t.Cleanup(func() { close(o.stop) }) // before ServeConns' cleanup waits for serve
	return o
}

// Next returns the record of the next connection that sent a request.
func (o *WireOrigin) Next() WireRecord { return <-o.records }

// NextFor returns the record of the next connection whose request was for
// path, passing over the others (a browser's favicon).
func (o *WireOrigin) NextFor(path string) WireRecord {
	for {
		if r := <-o.records; r.Path == path {
			return r
		}
	}
}

func (o *WireOrigin) serve(c net.Conn, leaf tls.Certificate, plain bool) {
	defer c.Close()
	var rec WireRecord
	var conn net.Conn = c
	if !plain {
		r := &helloTap{Conn: c}
		cfg := &tls.Config{Certificates: []tls.Certificate{leaf}, NextProtos: []string{"h2", "http/1.1"}}
		cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
			rec.Hello = slices.Clone(r.buf)
			rec.JA4, _ = JA4(rec.Hello)
			r.off = true
			return nil, nil
		}
		tc := tls.Server(r, cfg)
		if err := tc.Handshake(); err != nil {
			return
		}
		rec.ALPN = tc.ConnectionState().NegotiatedProtocol
		conn = tc
	}
	if rec.ALPN == "h2" {
		o.serveH2(conn, rec)
		return
	}
	br := bufio.NewReader(conn)
	var head strings.Builder
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		head.WriteString(line)
		if line == "\r\n" || line == "\n" {
			break
		}
	}
	rec.Head = head.String()
	if f := strings.Fields(rec.Head); len(f) > 1 {
		rec.Path = f[1]
	}
	io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	o.record(rec)
}

// record hands rec to Next, unless the test has ended.
func (o *WireOrigin) record(rec WireRecord) {
	select {
	case o.records <- rec:
	case <-o.stop:
	}
}

// serveH2 reads an HTTP/2 client's frames up to its first request and
// answers it.
func (o *WireOrigin) serveH2(c net.Conn, rec WireRecord) {
	fr, err := H2ServerFramer(c)
	if err != nil {
		return
	}
	var settings, prios []string
	update := "0"
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if f.IsAck() {
				continue
			}
			if settings == nil {
				settings = []string{}
				f.ForeachSetting(func(s http2.Setting) error {
					settings = append(settings, fmt.Sprintf("%d:%d", s.ID, s.Val))
					return nil
				})
			}
			fr.WriteSettingsAck()
		case *http2.WindowUpdateFrame:
			if f.StreamID == 0 && update == "0" {
				update = fmt.Sprint(f.Increment)
			}
		case *http2.PriorityFrame:
			prios = append(prios, fmt.Sprintf("%d:%d:%d:%d", f.StreamID, b2i(f.Exclusive), f.StreamDep, f.Weight))
		case *http2.MetaHeadersFrame:
			rec.Values = map[string][]string{}
			for _, hf := range f.Fields {
				rec.Fields = append(rec.Fields, hf.Name)
				if !hf.IsPseudo() {
					rec.Values[hf.Name] = append(rec.Values[hf.Name], hf.Value)
				}
			}
			rec.Path = f.PseudoValue("path")
			if f.HasPriority() {
				rec.Fields = append(rec.Fields, fmt.Sprintf("priority %d:%d:%d", b2i(f.Priority.Exclusive), f.Priority.StreamDep, f.Priority.Weight))
			}
			if len(prios) == 0 {
				prios = []string{"0"}
			}
			rec.Preface = strings.Join(settings, ";") + "|" + update + "|" + strings.Join(prios, ",")
			var block bytes.Buffer
			hpack.NewEncoder(&block).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, BlockFragment: block.Bytes(), EndHeaders: true})
			fr.WriteData(f.StreamID, true, []byte("ok"))
			fr.WriteGoAway(f.StreamID, http2.ErrCodeNo, nil)
			o.record(rec)
			io.Copy(io.Discard, c) // until the client closes
			return
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// helloTap keeps what it reads until off.
type helloTap struct {
	net.Conn
	buf []byte
	off bool
}

func (h *helloTap) Read(p []byte) (int, error) {
	n, err := h.Conn.Read(p)
	if !h.off {
		h.buf = append(h.buf, p[:n]...)
	}
	return n, err
}

// HelloShape describes what a ClientHello asks for, leaving out what
// changes from one connection to the next (randoms, keys, session IDs,
// GREASE values, padding, extension order): two hellos of one TLS stack
// have the same shape. It is the parts JA4 hashes, unhashed.
func HelloShape(t testing.TB, hello []byte) string {
	t.Helper()
	spec, err := (&utls.Fingerprinter{AllowBluntMimicry: true}).FingerprintClientHello(hello)
	if err != nil {
		t.Fatalf("parse ClientHello: %v", err)
	}
	var suites []string
	for _, cs := range spec.CipherSuites {
		if cs&0x0f0f != 0x0a0a {
			suites = append(suites, fmt.Sprintf("%04x", cs))
		}
	}
	var exts []string
	for _, e := range spec.Extensions {
		switch e := e.(type) {
		case *utls.UtlsGREASEExtension, *utls.UtlsPaddingExtension, *utls.UtlsPreSharedKeyExtension, *utls.FakePreSharedKeyExtension:
		case *utls.GREASEEncryptedClientHelloExtension:
			exts = append(exts, "ech-grease") // its payload is random
		case *utls.SignatureAlgorithmsExtension:
			var algs []string
			for _, a := range e.SupportedSignatureAlgorithms {
				if a&0x0f0f != 0x0a0a {
					algs = append(algs, fmt.Sprintf("%04x", uint16(a)))
				}
			}
			exts = append(exts, "sigalgs "+strings.Join(algs, ","))
		case *utls.GenericExtension:
			exts = append(exts, fmt.Sprintf("ext %d %x", e.Id, e.Data))
		case *utls.KeyShareExtension:
			var groups []string
			for _, k := range e.KeyShares {
				if k.Group&0x0f0f != 0x0a0a {
					groups = append(groups, fmt.Sprint(k.Group))
				}
			}
			exts = append(exts, "key_share "+strings.Join(groups, ","))
		case *utls.SupportedCurvesExtension:
			var groups []string
			for _, g := range e.Curves {
				if g&0x0f0f != 0x0a0a {
					groups = append(groups, fmt.Sprint(g))
				}
			}
			exts = append(exts, "groups "+strings.Join(groups, ","))
		case *utls.SupportedVersionsExtension:
			var vs []string
			for _, v := range e.Versions {
				if v&0x0f0f != 0x0a0a {
					vs = append(vs, fmt.Sprintf("%04x", v))
				}
			}
			exts = append(exts, "versions "+strings.Join(vs, ","))
		case *utls.SNIExtension:
			exts = append(exts, "sni")
		default:
			exts = append(exts, fmt.Sprintf("%T %v", e, e))
		}
	}
	slices.Sort(exts)
	return "suites " + strings.Join(suites, ",") + "\n" + strings.Join(exts, "\n")
}

// H2ServerFramer starts the server's side of an HTTP/2 connection on c:
// it reads the client's preface and sends settings. The framer it returns
// reads header blocks whole (MetaHeadersFrame).
func H2ServerFramer(c net.Conn, settings ...http2.Setting) (*http2.Framer, error) {
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil {
		return nil, err
	}
	if string(preface) != http2.ClientPreface {
		return nil, fmt.Errorf("proxytest: not an HTTP/2 client preface: %q", preface)
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	return fr, fr.WriteSettings(settings...)
}
