// Package mitm is the proxy's own certificate authority for HTTPS
// interception: it loads or creates the CA's files and makes a leaf
// certificate per intercepted host, cached.
package mitm

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/patrickmn/go-cache"
	"golang.org/x/sync/singleflight"

	"github.com/sessionproxy/sessionproxy/sessionpool/atomicfile"
)

// CA errors, matched with errors.Is.
var (
	// ErrCAFiles: exactly one of the CA certificate and key files exists.
	ErrCAFiles = errors.New("mitm: CA certificate and key must both exist or both be absent")
	// ErrCANotFound: Load was given a CA file that does not exist.
	ErrCANotFound = errors.New("mitm: CA file not found")
	// ErrCAInvalid: a CA file cannot be used (bad PEM, not a CA, expired,
	// key does not match the certificate, unsupported key type).
	ErrCAInvalid = errors.New("mitm: invalid CA")
	// ErrCAKeyMode: the CA key file is readable or writable by group or others.
	ErrCAKeyMode = errors.New("mitm: CA key file permissions too open")
	// ErrBadHost: TLSConfigForHost got a host a certificate cannot be made for.
	ErrBadHost = errors.New("mitm: bad host for certificate")
)

const (
	caValidity        = 10 * 365 * 24 * time.Hour
	leafValidity      = 90 * 24 * time.Hour
	leafBackdate      = time.Hour
	leafCacheTTL      = 24 * time.Hour
	maxLeaves         = 10_000 // leaves cached, about 4 KiB each
	leafSweepInterval = 10 * time.Minute
	// A cached leaf is not served when it expires within this margin.
	leafExpiryMargin = time.Hour
)

// CA is the proxy's own certificate authority for HTTPS interception. A
// generated CA uses an ECDSA P-256 key; a loaded one may use ECDSA, RSA or
// Ed25519. Leaf certificates are made per host with a fresh ECDSA P-256 key
// and cached (go-cache, 24h) until Close.
//
// A CA is made with LoadOrCreate; its zero value is not usable. Its
// methods are safe for concurrent use. It owns no goroutine: expired leaves
// are swept on cache misses.
type CA struct {
	cert    *x509.Certificate
	certDER []byte
	certPEM []byte
	key     crypto.Signer
	spki    string
	now     func() time.Time

	leaves    *cache.Cache       // host -> *leafEntry; janitor off, swept by sweepDue's callers
	maxLeaves int                // the most leaves cached (maxLeaves)
	making    singleflight.Group // one leaf generation per host at a time

	mu        sync.Mutex // guards the fields below
	lastSweep time.Time
	closed    bool
}

type leafEntry struct {
	cert     *tls.Certificate
	notAfter time.Time
}

// LoadOrCreate loads the CA from certPath and keyPath (PEM), or generates
// a new ECDSA P-256 CA there when neither file exists; created reports the
// latter. New files are written atomically (atomicfile), the certificate
// with mode 0644 and the key with mode 0600, in directories created with
// mode 0700; temporary files of an earlier, interrupted generation are
// removed first.
//
// Loading checks that the certificate is a CA for servers' certificates
// (its key usage and extended key usage allow it) valid at now, that the
// key matches it and can sign a leaf, and that the key file is not
// accessible to group or others (ErrCAKeyMode). Exactly one existing file gives ErrCAFiles; unusable
// content gives ErrCAInvalid. A nil now means time.Now.
func LoadOrCreate(certPath, keyPath string, now func() time.Time) (ca *CA, created bool, err error) {
	if now == nil {
		now = time.Now
	}
	if certPath == "" || keyPath == "" {
		return nil, false, fmt.Errorf("%w: empty certificate or key path", ErrCAFiles)
	}
	certExists, err := fileExists(certPath)
	if err != nil {
		return nil, false, err
	}
	keyExists, err := fileExists(keyPath)
	if err != nil {
		return nil, false, err
	}
	switch {
	case certExists && keyExists:
		ca, err := loadCA(certPath, keyPath, now)
		return ca, false, err
	case !certExists && !keyExists:
		ca, err := createCA(certPath, keyPath, now)
		return ca, err == nil, err
	case certExists:
		return nil, false, fmt.Errorf("%w: certificate %s exists but key %s does not (provide both, or remove the certificate to generate a new CA)", ErrCAFiles, certPath, keyPath)
	default:
		return nil, false, fmt.Errorf("%w: key %s exists but certificate %s does not (provide both, or remove the key to generate a new CA)", ErrCAFiles, keyPath, certPath)
	}
}

// Load loads the CA from certPath and keyPath (PEM), which must both exist
// (ErrCANotFound): a CA named on purpose is never generated in its place.
// It checks what LoadOrCreate checks. A nil now means time.Now.
func Load(certPath, keyPath string, now func() time.Time) (*CA, error) {
	if now == nil {
		now = time.Now
	}
	var errs []error // each file's problem
	for _, p := range []string{certPath, keyPath} {
		ok, err := fileExists(p)
		switch {
		case err != nil:
			errs = append(errs, err)
		case !ok:
			errs = append(errs, fmt.Errorf("%w: %s", ErrCANotFound, p))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return loadCA(certPath, keyPath, now)
}

func fileExists(path string) (bool, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err // a *PathError naming path
	}
	if fi.IsDir() {
		return false, fmt.Errorf("%w: %s is a directory", ErrCAInvalid, path)
	}
	return true, nil
}

func loadCA(certPath, keyPath string, now func() time.Time) (*CA, error) {
	fi, err := os.Stat(keyPath)
	if err != nil {
		return nil, fmt.Errorf("check CA key mode: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o, want 0600 (run: chmod 600 %s)", ErrCAKeyMode, keyPath, perm, keyPath)
	}
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read CA key: %w", err)
	}
	cert, err := parseCACert(certPEM, now())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", certPath, err)
	}
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: key %s does not match certificate %s", ErrCAInvalid, keyPath, certPath)
	}
	ca := newCA(cert, key, now)
	// One leaf signed now: a key that parses but cannot sign (an RSA key
	// under 1024 bits) fails here, not on every intercepted connection.
	if _, err := ca.newLeaf("sessionproxy", now()); err != nil {
		return nil, fmt.Errorf("%w: key %s cannot sign certificates: %v", ErrCAInvalid, keyPath, err)
	}
	return ca, nil
}

// parseCACert parses the first CERTIFICATE block of data and checks that it
// can sign leaves at now.
func parseCACert(data []byte, now time.Time) (*x509.Certificate, error) {
	var block *pem.Block
	for rest := data; ; {
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM CERTIFICATE block", ErrCAInvalid)
		}
		if block.Type == "CERTIFICATE" {
			break
		}
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parse certificate: %v", ErrCAInvalid, err)
	}
	if !cert.BasicConstraintsValid || !cert.IsCA {
		return nil, fmt.Errorf("%w: certificate is not a CA (no CA basic constraint)", ErrCAInvalid)
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("%w: certificate key usage lacks certificate signing", ErrCAInvalid)
	}
	if !serverAuthAllowed(cert) {
		return nil, fmt.Errorf("%w: certificate's extended key usage excludes server authentication (its leaves would not verify)", ErrCAInvalid)
	}
	if now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%w: certificate expired at %s", ErrCAInvalid, cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(cert.NotBefore) {
		return nil, fmt.Errorf("%w: certificate not valid before %s", ErrCAInvalid, cert.NotBefore.UTC().Format(time.RFC3339))
	}
	return cert, nil
}

// serverAuthAllowed reports whether cert's extended key usage, which
// clients require of every certificate of a chain, lets it stand above a
// server's certificate: none stated, any, or server authentication (or the
// server-gated-crypto usages Go and browsers count as it).
func serverAuthAllowed(cert *x509.Certificate) bool {
	if len(cert.ExtKeyUsage) == 0 && len(cert.UnknownExtKeyUsage) == 0 {
		return true
	}
	for _, u := range cert.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageAny, x509.ExtKeyUsageServerAuth,
			x509.ExtKeyUsageNetscapeServerGatedCrypto, x509.ExtKeyUsageMicrosoftServerGatedCrypto:
			return true
		}
	}
	return false
}

// parsePrivateKey parses the first private key block of data: PKCS#8,
// SEC 1 (EC) or PKCS#1 (RSA), unencrypted.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, fmt.Errorf("%w: no PEM private key block", ErrCAInvalid)
		}
		// PKCS#8's encryption, or RFC 1421's (openssl's -aes256 on a key).
		if block.Type == "ENCRYPTED PRIVATE KEY" ||
			strings.HasSuffix(block.Type, "PRIVATE KEY") && strings.Contains(block.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, fmt.Errorf("%w: the key is encrypted; give it unencrypted (openssl pkey -in KEY -out NEWKEY)", ErrCAInvalid)
		}
		var key any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: parse %s: %v", ErrCAInvalid, strings.ToLower(block.Type), err)
		}
		switch k := key.(type) {
		case *ecdsa.PrivateKey:
			return k, nil
		case *rsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("%w: unsupported key type %T", ErrCAInvalid, key)
		}
	}
}

func createCA(certPath, keyPath string, now func() time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	var tag [4]byte
	if _, err := rand.Read(tag[:]); err != nil {
		return nil, fmt.Errorf("generate CA name: %w", err)
	}
	t := now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "sessionproxy CA " + hex.EncodeToString(tag[:]), Organization: []string{"sessionproxy"}},
		NotBefore:             t.Add(-leafBackdate),
		NotAfter:              t.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse new CA certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal CA key: %w", err)
	}
	// The key goes first: a crash between the two writes leaves only the
	// key, which the next start reports (ErrCAFiles) instead of silently
	// making a CA whose certificate clients already trust unusable.
	if err := writeCAFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return nil, fmt.Errorf("write CA key: %w", err)
	}
	if err := writeCAFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		// A failure the proxy sees (not a crash) takes the key away too:
		// alone it would stop every later start for a certificate no
		// client was ever given.
		if rerr := os.Remove(keyPath); rerr != nil {
			return nil, fmt.Errorf("write CA certificate: %w (the key written before it stays: %v)", err, rerr)
		}
		return nil, fmt.Errorf("write CA certificate: %w", err)
	}
	return newCA(cert, key, now), nil
}

// writeCAFile writes one new CA file atomically, creating its directory
// (0700) when missing and removing the temporary files an interrupted
// earlier attempt left there (one may hold a private key).
func writeCAFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	if err := atomicfile.RemoveTemps(path); err != nil {
		return err
	}
	return atomicfile.Write(path, data, mode)
}

func randomSerial() (*big.Int, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return serial.Add(serial, big.NewInt(1)), nil // never zero
}

func newCA(cert *x509.Certificate, key crypto.Signer, now func() time.Time) *CA {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return &CA{
		cert:      cert,
		certDER:   cert.Raw,
		certPEM:   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		key:       key,
		spki:      base64.StdEncoding.EncodeToString(sum[:]),
		now:       now,
		leaves:    cache.New(leafCacheTTL, 0),
		maxLeaves: maxLeaves,
	}
}

// CertPEM returns the CA certificate in PEM form. The caller must not
// modify it.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// CertDER returns the CA certificate in DER form. The caller must not
// modify it.
func (ca *CA) CertDER() []byte { return ca.certDER }

// SPKIHash returns the standard base64 of the SHA-256 of the CA
// certificate's SubjectPublicKeyInfo, the value Chromium's
// --ignore-certificate-errors-spki-list takes.
func (ca *CA) SPKIHash() string { return ca.spki }

// Close drops the cached leaf certificates and stops caching new ones.
// TLSConfigForHost keeps working after Close, generating a leaf each call.
// Close is idempotent.
func (ca *CA) Close() {
	ca.mu.Lock()
	ca.closed = true
	ca.mu.Unlock()
	ca.leaves.Flush()
}

// TLSConfigForHost returns a server TLS configuration for intercepting host
// (a port, if any, is ignored; an IP gets an IP SAN). A client whose hello
// names another server (SNI: one that connected to an IP, say) gets a leaf
// for that name instead, as mitmproxy gives. The leaf certificate has a
// fresh ECDSA P-256 key, is valid from an hour before now for 90 days
// (never past the CA's expiry), and is cached per name; concurrent first
// calls for one name generate it once. Each call returns a new *tls.Config
// (MinVersion TLS 1.2, NextProtos empty) that the caller may modify.
func (ca *CA) TLSConfigForHost(host string) (*tls.Config, error) {
	name, err := certHostName(host)
	if err != nil {
		return nil, err
	}
	entry, err := ca.leaf(name)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{*entry.cert},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) { // called for a hello with SNI
			if sni, err := certHostName(hello.ServerName); err == nil && sni != name {
				if e, err := ca.leaf(sni); err == nil {
					return e.cert, nil
				}
			}
			return entry.cert, nil // no SNI (or one no certificate can name): the CONNECT's host
		},
		MinVersion: tls.VersionTLS12,
	}, nil
}

// certHostName strips the port and brackets from host, lowercases it and
// checks that a certificate can name it.
func certHostName(host string) (string, error) {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")
	if i := strings.IndexByte(name, '%'); i >= 0 { // IPv6 zone
		name = name[:i]
	}
	name = strings.TrimRight(strings.ToLower(name), ".")
	if name == "" {
		return "", fmt.Errorf("%w: empty host in %q", ErrBadHost, host)
	}
	if len(name) > 253 {
		return "", fmt.Errorf("%w: host longer than 253 bytes", ErrBadHost)
	}
	if net.ParseIP(name) != nil {
		return name, nil
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return "", fmt.Errorf("%w: invalid character %q in %q", ErrBadHost, c, host)
		}
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return "", fmt.Errorf("%w: empty or over-long label in %q", ErrBadHost, host)
		}
	}
	return name, nil
}

// leaf returns the cached leaf for name, generating it when missing or
// close to expiry; concurrent callers for one name share one generation.
func (ca *CA) leaf(name string) (*leafEntry, error) {
	now := ca.now()
	if e := ca.cached(name, now); e != nil {
		return e, nil
	}
	v, err, _ := ca.making.Do(name, func() (any, error) {
		// A generation that ended just before this one began cached it.
		if e := ca.cached(name, now); e != nil {
			return e, nil
		}
		if ca.sweepDue(now) {
			ca.leaves.DeleteExpired()
		}
		e, err := ca.newLeaf(name, now)
		if err != nil {
			return nil, err
		}
		ca.mu.Lock()
		defer ca.mu.Unlock()
		if ttl := min(leafCacheTTL, e.notAfter.Sub(now)-leafExpiryMargin); ttl > 0 && !ca.closed {
			if ca.leaves.ItemCount() >= ca.maxLeaves {
				// A client naming ever new hosts: the cache starts over
				// (a leaf is a key and a signature to make again).
				ca.leaves.Flush()
			}
			ca.leaves.Set(name, e, ttl)
		}
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*leafEntry), nil
}

// cached returns the cached leaf for name unless it expires within
// leafExpiryMargin of now; nil when there is none to serve.
func (ca *CA) cached(name string, now time.Time) *leafEntry {
	if v, ok := ca.leaves.Get(name); ok {
		if e := v.(*leafEntry); now.Add(leafExpiryMargin).Before(e.notAfter) {
			return e
		}
	}
	return nil
}

// sweepDue reports whether expired leaves are due to be swept (at most
// once per leafSweepInterval), and if so notes that they are being swept.
func (ca *CA) sweepDue(now time.Time) bool {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if now.Sub(ca.lastSweep) < leafSweepInterval {
		return false
	}
	ca.lastSweep = now
	return true
}

// newLeaf makes a server certificate for name signed by the CA.
func (ca *CA) newLeaf(name string, now time.Time) (*leafEntry, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate leaf key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	notBefore := now.Add(-leafBackdate)
	if notBefore.Before(ca.cert.NotBefore) {
		notBefore = ca.cert.NotBefore
	}
	notAfter := now.Add(leafValidity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	if !notAfter.After(now) {
		return nil, fmt.Errorf("%w: CA expired at %s", ErrCAInvalid, ca.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{name}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, key.Public(), ca.key)
	if err != nil {
		return nil, fmt.Errorf("sign leaf for %s: %w", name, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse leaf for %s: %w", name, err)
	}
	return &leafEntry{
		cert: &tls.Certificate{
			Certificate: [][]byte{der, ca.certDER},
			PrivateKey:  key,
			Leaf:        leaf,
		},
		notAfter: notAfter,
	}, nil
}
