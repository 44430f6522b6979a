package mitm

import (
	"bytes"
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
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// caClock is a settable clock for CA tests.
type caClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *caClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *caClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var caEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// newFileCA creates a CA in a fresh temp dir with clock.
func newFileCA(t testing.TB, clock func() time.Time) (*CA, string, string) {
	t.Helper()
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "data", "ca.pem"), filepath.Join(dir, "data", "ca-key.pem")
	ca, created, err := LoadOrCreate(certPath, keyPath, clock)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false for a fresh directory")
	}
	t.Cleanup(ca.Close)
	return ca, certPath, keyPath
}

func TestLoadOrCreateCreates(t *testing.T) {
	clock := &caClock{t: caEpoch}
	ca, certPath, keyPath := newFileCA(t, clock.Now)

	for path, want := range map[string]os.FileMode{certPath: 0o644, keyPath: 0o600, filepath.Dir(certPath): 0o700} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", path, got, want)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(certPath))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("data dir holds %d entries, want 2 (no temp files left)", len(entries))
	}

	onDisk, err := os.ReadFile(certPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, ca.CertPEM()) {
		t.Error("CertPEM differs from the written file")
	}
	block, _ := pem.Decode(ca.CertPEM())
	if block == nil || !bytes.Equal(block.Bytes, ca.CertDER()) {
		t.Fatal("CertPEM does not hold CertDER")
	}
	cert, err := x509.ParseCertificate(ca.CertDER())
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || !cert.MaxPathLenZero || cert.MaxPathLen != 0 {
		t.Errorf("not a path-length-zero CA: IsCA=%v MaxPathLen=%d zero=%v", cert.IsCA, cert.MaxPathLen, cert.MaxPathLenZero)
	}
	if cert.KeyUsage != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		t.Errorf("KeyUsage = %v", cert.KeyUsage)
	}
	pub, ok := cert.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", cert.PublicKey)
	}
	if !strings.HasPrefix(cert.Subject.CommonName, "sessionproxy CA ") || len(cert.Subject.CommonName) <= len("sessionproxy CA ") {
		t.Errorf("CN = %q", cert.Subject.CommonName)
	}
	if got, want := cert.NotAfter.Sub(caEpoch), 10*365*24*time.Hour; got != want {
		t.Errorf("CA lives %v from now, want %v", got, want)
	}
	if !cert.NotBefore.Before(caEpoch) {
		t.Errorf("NotBefore %v not before now %v", cert.NotBefore, caEpoch)
	}

	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	if got, want := ca.SPKIHash(), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Errorf("SPKIHash = %q, want %q", got, want)
	}

	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(onDisk, keyPEM); err != nil {
		t.Errorf("written key does not pair with the certificate: %v", err)
	}
}

// TestLoadOrCreateRemovesTemps: generating a CA removes what an
// interrupted earlier generation left (a temporary file may hold a key).
func TestLoadOrCreateRemovesTemps(t *testing.T) {
	dir := t.TempDir()
	leftover := filepath.Join(dir, ".ca-key.pem.tmp-ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if err := os.WriteFile(leftover, []byte("half a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, created, err := LoadOrCreate(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"), nil)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	defer ca.Close()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("directory holds %d entries, want ca.pem and ca-key.pem only", len(entries))
	}
}

func TestLoadOrCreateReloads(t *testing.T) {
	clock := &caClock{t: caEpoch}
	ca, certPath, keyPath := newFileCA(t, clock.Now)
	clock.Add(24 * time.Hour)
	again, created, err := LoadOrCreate(certPath, keyPath, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if created {
		t.Error("created = true for existing files")
	}
	if again.SPKIHash() != ca.SPKIHash() || !bytes.Equal(again.CertDER(), ca.CertDER()) {
		t.Error("reloaded CA differs from the created one")
	}
	// The reloaded key signs leaves the original certificate verifies.
	cfg, err := again.TLSConfigForHost("example.org:443")
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, cfg, ca.CertDER(), "example.org", clock.Now())
}

// TestLoad: Load takes an existing CA as LoadOrCreate does, and refuses
// missing files with ErrCANotFound, creating nothing.
func TestLoad(t *testing.T) {
	clock := &caClock{t: caEpoch}
	ca, certPath, keyPath := newFileCA(t, clock.Now)
	again, err := Load(certPath, keyPath, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.SPKIHash() != ca.SPKIHash() {
		t.Error("Load gave another CA than the files hold")
	}

	dir := filepath.Join(t.TempDir(), "typo")
	for _, paths := range [][2]string{
		{filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")},
		{certPath, filepath.Join(dir, "ca-key.pem")},
		{filepath.Join(dir, "ca.pem"), keyPath},
	} {
		if _, err := Load(paths[0], paths[1], clock.Now); !errors.Is(err, ErrCANotFound) || !strings.Contains(err.Error(), dir) {
			t.Errorf("Load(%s, %s) = %v, want ErrCANotFound naming the missing file", paths[0], paths[1], err)
		}
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load created %s (%v)", dir, err)
	}
}

// writeCAFiles writes a CA made with key and tmpl (self-signed) into dir,
// with the key PEM-encoded as keyType.
func writeCAFiles(t *testing.T, dir string, tmpl *x509.Certificate, key any, keyType string) (certPath, keyPath string) {
	t.Helper()
	var pub any
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		pub = k.Public()
	case *rsa.PrivateKey:
		pub = k.Public()
	case ed25519.PrivateKey:
		pub = k.Public()
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	var keyDER []byte
	switch keyType {
	case "PRIVATE KEY":
		keyDER, err = x509.MarshalPKCS8PrivateKey(key)
	case "EC PRIVATE KEY":
		keyDER, err = x509.MarshalECPrivateKey(key.(*ecdsa.PrivateKey))
	case "RSA PRIVATE KEY":
		keyDER = x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))
	}
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: keyType, Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath
}

func caTemplate(isCA bool) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber:          big.NewInt(42),
		Subject:               pkix.Name{CommonName: "foreign CA"},
		NotBefore:             caEpoch.Add(-time.Hour),
		NotAfter:              caEpoch.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  isCA,
	}
}

func TestLoadOrCreateForeignKeyTypes(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name    string
		key     any
		keyType string
	}{
		{"ecdsa-sec1", ecKey, "EC PRIVATE KEY"},
		{"ecdsa-pkcs8", ecKey, "PRIVATE KEY"},
		{"rsa-pkcs1", rsaKey, "RSA PRIVATE KEY"},
		{"rsa-pkcs8", rsaKey, "PRIVATE KEY"},
		{"ed25519-pkcs8", edKey, "PRIVATE KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPath, keyPath := writeCAFiles(t, t.TempDir(), caTemplate(true), tc.key, tc.keyType)
			ca, created, err := LoadOrCreate(certPath, keyPath, func() time.Time { return caEpoch })
			if err != nil {
				t.Fatal(err)
			}
			defer ca.Close()
			if created {
				t.Error("created = true")
			}
			cfg, err := ca.TLSConfigForHost("foreign.example")
			if err != nil {
				t.Fatal(err)
			}
			verifyLeaf(t, cfg, ca.CertDER(), "foreign.example", caEpoch)
		})
	}
}

// TestLoadCAWithExtKeyUsage: a CA whose extended key usage allows server
// authentication (or any usage) loads, and its leaves verify.
func TestLoadCAWithExtKeyUsage(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	for _, eku := range [][]x509.ExtKeyUsage{
		{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		{x509.ExtKeyUsageAny},
	} {
		tmpl := caTemplate(true)
		tmpl.ExtKeyUsage = eku
		certPath, keyPath := writeCAFiles(t, t.TempDir(), tmpl, key, "PRIVATE KEY")
		ca, err := Load(certPath, keyPath, func() time.Time { return caEpoch })
		if err != nil {
			t.Fatalf("extended key usage %v: %v", eku, err)
		}
		cfg, err := ca.TLSConfigForHost("eku.example")
		if err != nil {
			t.Fatal(err)
		}
		verifyLeaf(t, cfg, ca.CertDER(), "eku.example", caEpoch)
		ca.Close()
	}
}

func TestLoadOrCreateErrors(t *testing.T) {
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherKeyDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	otherKeyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherKeyDER})
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dir string) (certPath, keyPath string)
		now     time.Time
		wantIs  error
		wantMsg string
	}{
		{
			name: "only certificate",
			setup: func(t *testing.T, dir string) (string, string) {
				c, _ := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.Remove(filepath.Join(dir, "ca-key.pem"))
				return c, filepath.Join(dir, "ca-key.pem")
			},
			wantIs: ErrCAFiles, wantMsg: "key",
		},
		{
			name: "only key",
			setup: func(t *testing.T, dir string) (string, string) {
				_, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.Remove(filepath.Join(dir, "ca.pem"))
				return filepath.Join(dir, "ca.pem"), k
			},
			wantIs: ErrCAFiles, wantMsg: "certificate",
		},
		{
			name: "garbage certificate",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(c, []byte("not a certificate\n"), 0o644)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "no PEM CERTIFICATE",
		},
		{
			name: "corrupt certificate DER",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0o644)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "parse certificate",
		},
		{
			name: "garbage key",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(k, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "private key",
		},
		{
			name: "no key block",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(k, []byte("hello"), 0o600)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "no PEM private key",
		},
		{
			name: "encrypted PKCS#8 key",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{0x30, 0x03, 0x02, 0x01, 0x00}}), 0o600)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "key is encrypted",
		},
		{
			name: "encrypted legacy PEM key",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY",
					Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00112233445566778899AABBCCDDEEFF"},
					Bytes:   bytes.Repeat([]byte{0x5a}, 128)}), 0o600)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "key is encrypted",
		},
		{
			name: "mismatched key",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.WriteFile(k, otherKeyPEM, 0o600)
				return c, k
			},
			wantIs: ErrCAInvalid, wantMsg: "does not match",
		},
		{
			name: "not a CA",
			setup: func(t *testing.T, dir string) (string, string) {
				return writeCAFiles(t, dir, caTemplate(false), caKey, "PRIVATE KEY")
			},
			wantIs: ErrCAInvalid, wantMsg: "not a CA",
		},
		{
			name: "expired",
			setup: func(t *testing.T, dir string) (string, string) {
				return writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
			},
			now:    caEpoch.Add(2 * 365 * 24 * time.Hour),
			wantIs: ErrCAInvalid, wantMsg: "expired",
		},
		{
			// Clients check the extended key usage of every certificate
			// of the chain: no leaf of this CA would verify as a server's.
			name: "extended key usage without server authentication",
			setup: func(t *testing.T, dir string) (string, string) {
				tmpl := caTemplate(true)
				tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageCodeSigning}
				return writeCAFiles(t, dir, tmpl, caKey, "PRIVATE KEY")
			},
			wantIs: ErrCAInvalid, wantMsg: "server authentication",
		},
		{
			// Go refuses to sign with an RSA key under 1024 bits: a CA
			// that loads but cannot make a single leaf.
			name: "RSA key too small to sign leaves",
			setup: func(t *testing.T, dir string) (certPath, keyPath string) {
				t.Run("make", func(t *testing.T) { // t.Setenv restores the minimum when this ends
					t.Setenv("GODEBUG", "rsa1024min=0")
					weak, err := rsa.GenerateKey(rand.Reader, 512)
					if err != nil {
						t.Fatal(err)
					}
					certPath, keyPath = writeCAFiles(t, dir, caTemplate(true), weak, "RSA PRIVATE KEY")
				})
				return certPath, keyPath
			},
			wantIs: ErrCAInvalid, wantMsg: "cannot sign",
		},
		{
			name: "key readable by others",
			setup: func(t *testing.T, dir string) (string, string) {
				c, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				os.Chmod(k, 0o644)
				return c, k
			},
			wantIs: ErrCAKeyMode, wantMsg: "chmod 600",
		},
		{
			name: "certificate path is a directory",
			setup: func(t *testing.T, dir string) (string, string) {
				_, k := writeCAFiles(t, dir, caTemplate(true), caKey, "PRIVATE KEY")
				return dir, k
			},
			wantIs: ErrCAInvalid, wantMsg: "directory",
		},
		{
			name: "empty paths",
			setup: func(t *testing.T, dir string) (string, string) {
				return "", ""
			},
			wantIs: ErrCAFiles, wantMsg: "empty",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			certPath, keyPath := tc.setup(t, t.TempDir())
			now := tc.now
			if now.IsZero() {
				now = caEpoch
			}
			ca, _, err := LoadOrCreate(certPath, keyPath, func() time.Time { return now })
			if err == nil {
				ca.Close()
				t.Fatal("no error")
			}
			if !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q is not %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q has several lines", err)
			}
		})
	}
}

func TestLoadOrCreateNilClock(t *testing.T) {
	dir := t.TempDir()
	ca, created, err := LoadOrCreate(filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem"), nil)
	if err != nil || !created {
		t.Fatalf("created=%v err=%v", created, err)
	}
	defer ca.Close()
	cert, _ := x509.ParseCertificate(ca.CertDER())
	if time.Now().Before(cert.NotBefore) || time.Now().After(cert.NotAfter) {
		t.Errorf("CA made with the real clock is not valid now: %v..%v", cert.NotBefore, cert.NotAfter)
	}
}

// verifyLeaf checks that cfg serves one leaf that verifies for name (a DNS
// name or an IP) against a pool holding only the CA certificate caDER, at now.
func verifyLeaf(t *testing.T, cfg *tls.Config, caDER []byte, name string, now time.Time) *x509.Certificate {
	t.Helper()
	if len(cfg.Certificates) != 1 {
		t.Fatalf("%d certificates, want 1", len(cfg.Certificates))
	}
	chain := cfg.Certificates[0].Certificate
	leaf, err := x509.ParseCertificate(chain[0])
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
		t.Errorf("leaf for %q does not verify: %v", name, err)
	}
	return leaf
}

func TestCALeafVerifies(t *testing.T) {
	clock := &caClock{t: caEpoch}
	ca, _, _ := newFileCA(t, clock.Now)
	for _, tc := range []struct{ host, name string }{
		{"example.com:443", "example.com"},
		{"Example.COM", "example.com"},
		{"www.example.com.", "www.example.com"},
		{"127.0.0.1:8443", "127.0.0.1"},
		{"[::1]:443", "::1"},
		{"::1", "::1"},
	} {
		t.Run(tc.host, func(t *testing.T) {
			cfg, err := ca.TLSConfigForHost(tc.host)
			if err != nil {
				t.Fatal(err)
			}
			leaf := verifyLeaf(t, cfg, ca.CertDER(), tc.name, clock.Now())
			if ip := net.ParseIP(tc.name); ip != nil {
				if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(ip) || len(leaf.DNSNames) != 0 {
					t.Errorf("IP SANs %v DNS SANs %v, want only IP %v", leaf.IPAddresses, leaf.DNSNames, ip)
				}
			} else if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tc.name {
				t.Errorf("DNS SANs %v, want [%s]", leaf.DNSNames, tc.name)
			}
			if cfg.MinVersion != tls.VersionTLS12 || len(cfg.NextProtos) != 0 {
				t.Errorf("MinVersion %x NextProtos %v", cfg.MinVersion, cfg.NextProtos)
			}
			if leaf.IsCA {
				t.Error("leaf is a CA")
			}
			if pub, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
				t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
			}
			if !leaf.NotBefore.Equal(caEpoch.Add(-time.Hour)) || !leaf.NotAfter.Equal(caEpoch.Add(90*24*time.Hour)) {
				t.Errorf("leaf valid %v..%v, want now-1h..now+90d", leaf.NotBefore, leaf.NotAfter)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: x509.NewCertPool()}); err == nil {
				t.Error("leaf verifies without the CA")
			}
		})
	}
}

func TestCALeafHandshake(t *testing.T) {
	ca, _, _ := newFileCA(t, nil)
	cfg, err := ca.TLSConfigForHost("intercepted.test:443")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	server, client := net.Pipe()
	defer server.Close()
	defer client.Close()
	errc := make(chan error, 1)
	go func() {
		s := tls.Server(server, cfg)
		errc <- s.Handshake()
	}()
	c := tls.Client(client, &tls.Config{ServerName: "intercepted.test", RootCAs: roots})
	if err := c.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	if got := c.ConnectionState().PeerCertificates[0].DNSNames; len(got) != 1 || got[0] != "intercepted.test" {
		t.Errorf("peer names %v", got)
	}
}

// TestCALeafFollowsSNI: a client that connected to one host but names
// another in its hello (an IP and then a name, say) gets a leaf for the
// name; without SNI, or with one no certificate can name, the CONNECT's.
func TestCALeafFollowsSNI(t *testing.T) {
	ca, _, _ := newFileCA(t, nil)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.CertPEM())
	for _, tc := range []struct{ connect, sni, want string }{
		{"127.0.0.1:443", "shop.example", "shop.example"},
		{"127.0.0.1:443", "", "127.0.0.1"},
		{"a.example:443", "B.Example", "b.example"},
		{"a.example:443", "a.example", "a.example"},
	} {
		cfg, err := ca.TLSConfigForHost(tc.connect)
		if err != nil {
			t.Fatal(err)
		}
		server, client := net.Pipe()
		go func() {
			tls.Server(server, cfg).Handshake()
			server.Close()
		}()
		c := tls.Client(client, &tls.Config{ServerName: tc.sni, InsecureSkipVerify: true})
		if err := c.Handshake(); err != nil {
			t.Fatalf("%s with SNI %q: %v", tc.connect, tc.sni, err)
		}
		leaf := c.ConnectionState().PeerCertificates[0]
		client.Close()
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tc.want, Roots: roots}); err != nil {
			t.Errorf("%s with SNI %q: the leaf does not verify for %s: %v", tc.connect, tc.sni, tc.want, err)
		}
	}
}

func TestCALeafCaches(t *testing.T) {
	clock := &caClock{t: caEpoch}
	ca, _, _ := newFileCA(t, clock.Now)
	a, err := ca.TLSConfigForHost("cache.example:443")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ca.TLSConfigForHost("cache.example:8443") // port does not matter
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Error("the same *tls.Config twice: callers may modify it")
	}
	if a.Certificates[0].Leaf != b.Certificates[0].Leaf || !bytes.Equal(a.Certificates[0].Certificate[0], b.Certificates[0].Certificate[0]) {
		t.Error("second call made a new leaf instead of using the cache")
	}
	a.NextProtos = append(a.NextProtos, "h2")
	if c, _ := ca.TLSConfigForHost("cache.example"); len(c.NextProtos) != 0 {
		t.Error("a caller's change leaked into the next config")
	}

	other, err := ca.TLSConfigForHost("other.example")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(other.Certificates[0].Certificate[0], a.Certificates[0].Certificate[0]) {
		t.Error("two hosts share a leaf")
	}
	if other.Certificates[0].PrivateKey.(*ecdsa.PrivateKey).Equal(a.Certificates[0].PrivateKey) {
		t.Error("two hosts share a leaf key (deterministic signer?)")
	}

	// Close to the leaf's expiry, a fresh one is made.
	clock.Add(90*24*time.Hour - 30*time.Minute)
	late, err := ca.TLSConfigForHost("cache.example")
	if err != nil {
		t.Fatal(err)
	}
	if late.Certificates[0].Leaf == a.Certificates[0].Leaf {
		t.Error("a leaf about to expire was served from the cache")
	}
	verifyLeaf(t, late, ca.CertDER(), "cache.example", clock.Now())

	// After Close the cache is gone: a new leaf with a new key.
	ca.Close()
	again, err := ca.TLSConfigForHost("cache.example")
	if err != nil {
		t.Fatal(err)
	}
	if again.Certificates[0].Leaf == late.Certificates[0].Leaf {
		t.Error("Close kept the cached leaf")
	}
	verifyLeaf(t, again, ca.CertDER(), "cache.example", clock.Now())
}

// TestCALeafCacheBounded: a client naming ever new hosts does not grow the
// leaf cache past its bound; a host cached and then pushed out gets a leaf
// again that verifies.
func TestCALeafCacheBounded(t *testing.T) {
	clock := &caClock{t: caEpoch}
	ca, _, _ := newFileCA(t, clock.Now)
	ca.maxLeaves = 8
	for i := range 30 {
		if _, err := ca.TLSConfigForHost(fmt.Sprintf("h%d.example", i)); err != nil {
			t.Fatal(err)
		}
		if n := ca.leaves.ItemCount(); n > ca.maxLeaves {
			t.Fatalf("after %d hosts the cache holds %d leaves, over its bound of %d", i+1, n, ca.maxLeaves)
		}
	}
	first, err := ca.TLSConfigForHost("h0.example")
	if err != nil {
		t.Fatal(err)
	}
	verifyLeaf(t, first, ca.CertDER(), "h0.example", clock.Now())
	if ca.maxLeaves != 8 || newCA(ca.cert, ca.key, ca.now).maxLeaves != maxLeaves {
		t.Errorf("a CA's bound is %d, want %d", newCA(ca.cert, ca.key, ca.now).maxLeaves, maxLeaves)
	}
}

func TestCALeafCappedByCAExpiry(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := caTemplate(true)
	tmpl.NotAfter = caEpoch.Add(10 * 24 * time.Hour)
	certPath, keyPath := writeCAFiles(t, t.TempDir(), tmpl, key, "PRIVATE KEY")
	ca, _, err := LoadOrCreate(certPath, keyPath, func() time.Time { return caEpoch })
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cfg, err := ca.TLSConfigForHost("short.example")
	if err != nil {
		t.Fatal(err)
	}
	leaf := verifyLeaf(t, cfg, ca.CertDER(), "short.example", caEpoch)
	if !leaf.NotAfter.Equal(tmpl.NotAfter) {
		t.Errorf("leaf NotAfter %v, want the CA's %v", leaf.NotAfter, tmpl.NotAfter)
	}
}

func TestCALeafConcurrent(t *testing.T) {
	ca, _, _ := newFileCA(t, nil)
	const n = 16
	var wg sync.WaitGroup
	leaves := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			host := "same.example"
			if i%4 == 3 {
				host = "other" + string(rune('a'+i)) + ".example"
			}
			cfg, err := ca.TLSConfigForHost(host)
			if err != nil {
				errs[i] = err
				return
			}
			leaves[i] = cfg.Certificates[0].Certificate[0]
		}()
	}
	close(start)
	wg.Wait()
	var first []byte
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if i%4 == 3 {
			continue
		}
		if first == nil {
			first = leaves[i]
		} else if !bytes.Equal(first, leaves[i]) {
			t.Errorf("goroutine %d got another leaf for the same host: generated more than once", i)
		}
	}
}

func TestCALeafBadHost(t *testing.T) {
	ca, _, _ := newFileCA(t, nil)
	for _, host := range []string{"", ":443", "[]:443", "exa mple.com", "bad\x00host", "ünïcode.example", "a/b", strings.Repeat("a", 254)} {
		_, err := ca.TLSConfigForHost(host)
		if !errors.Is(err, ErrBadHost) {
			t.Errorf("TLSConfigForHost(%q) error = %v, want ErrBadHost", host, err)
		}
	}
}

func FuzzCAHostName(f *testing.F) {
	for _, s := range []string{"example.com:443", "[::1]:443", "127.0.0.1", "", ":", "[fe80::1%eth0]:80", "a..b", "x_y.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, host string) {
		name, err := certHostName(host)
		if err != nil {
			if !errors.Is(err, ErrBadHost) {
				t.Fatalf("error %v is not ErrBadHost", err)
			}
			return
		}
		if name == "" || strings.ContainsAny(name, " :/\x00") && net.ParseIP(name) == nil {
			t.Fatalf("certHostName(%q) = %q", host, name)
		}
		again, err := certHostName(name)
		if err != nil || again != name {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", host, name, again, err)
		}
	})
}

func BenchmarkCALeafCacheHit(b *testing.B) {
	ca, _, _ := newFileCA(b, nil)
	if _, err := ca.TLSConfigForHost("bench.example:443"); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := ca.TLSConfigForHost("bench.example:443"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkCALeafMiss(b *testing.B) {
	ca, _, _ := newFileCA(b, nil)
	b.ReportAllocs()
	for b.Loop() {
		ca.Close() // empty the cache: every call signs a leaf
		if _, err := ca.TLSConfigForHost("bench.example:443"); err != nil {
			b.Fatal(err)
		}
	}
}

// A certificate that cannot be written takes the key written before it
// away: left alone, the key would stop every later start (ErrCAFiles) for
// a certificate no client was ever given.
func TestCreateCARemovesKeyWhenCertFails(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := os.Mkdir(certPath, 0o700); err != nil { // a certificate cannot be renamed onto it
		t.Fatal(err)
	}
	if _, err := createCA(certPath, keyPath, time.Now); err == nil {
		t.Fatal("createCA wrote a certificate onto a directory")
	}
	if _, err := os.Stat(keyPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the key is left behind after the certificate failed (stat: %v)", err)
	}
}
