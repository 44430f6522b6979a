// Command origin is the origin of the proxy benchmark (../main.go): plain
// HTTP and HTTPS on 127.0.0.1, /12 answering a 12-byte body and /1k a
// 1 KiB body, each with a cookie and a Content-Length. Its HTTPS certificate
// comes from a CA it makes in -ca-dir (ca.pem is the file to trust). With
// -sites N it also serves plain HTTP on N more loopback addresses,
// 127.1.0.1 onwards, on the port of the first ("many sites": an IP literal
// is a site of its own). It prints {"http":"ADDR","https":"ADDR"} on stdout
// once it listens and serves until SIGINT or SIGTERM.
//
//	origin -ca-dir DIR [-sites N]
package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sessionproxy/sessionproxy/proxy/mitm"
)

func main() {
	caDir := flag.String("ca-dir", "", "directory of the CA that signs the HTTPS certificate (made if missing)")
	nSites := flag.Int("sites", 0, "serve plain HTTP on this many more loopback addresses, 127.1.0.1 onwards, same port")
	flag.Parse()
	if *caDir == "" {
		log.Fatal("origin: -ca-dir is required")
	}
	ca, _, err := mitm.LoadOrCreate(filepath.Join(*caDir, "ca.pem"), filepath.Join(*caDir, "ca-key.pem"), time.Now)
	if err != nil {
		log.Fatal(err)
	}
	tlsCfg, err := ca.TLSConfigForHost("127.0.0.1")
	if err != nil {
		log.Fatal(err)
	}
	small, large := "hello world\n", strings.Repeat("x", 1024)
	mux := http.NewServeMux()
	for path, body := range map[string]string{"/12": small, "/1k": large} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			http.SetCookie(w, &http.Cookie{Name: "seen", Value: "1", Path: "/"})
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Length", fmt.Sprint(len(body)))
			io.WriteString(w, body)
		})
	}
	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	secure, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(plain.Addr().String())
	var more []net.Listener
	for i := range *nSites {
		ln, err := net.Listen("tcp", net.JoinHostPort(SiteAddr(i), port))
		if err != nil {
			log.Fatal(err)
		}
		more = append(more, ln)
	}
	fmt.Printf("{\"http\":%q,\"https\":%q}\n", plain.Addr(), secure.Addr())
	quiet := log.New(io.Discard, "", 0)
	srv := &http.Server{Handler: mux, ErrorLog: quiet}
	if *nSites > 0 {
		// Every session keeps a connection to its site: let the idle ones
		// of a proxy whose turn is over go, or three proxies' would
		// exhaust the descriptors.
		srv.IdleTimeout = 2 * time.Second
	}
	tsrv := &http.Server{Handler: mux, ErrorLog: quiet, TLSConfig: tlsCfg}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
		tsrv.Close()
	}()
	go tsrv.Serve(tls.NewListener(secure, tlsCfg))
	for _, ln := range more {
		go srv.Serve(ln)
	}
	if err := srv.Serve(plain); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}

// SiteAddr is the address of the i-th extra site (-sites): 127.1.0.1
// onwards.
func SiteAddr(i int) string {
	i++
	return fmt.Sprintf("127.1.%d.%d", i/250, i%250+1)
}
