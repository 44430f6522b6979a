// Command goproxytuned is the baseline of the proxy's throughput benchmark
// (BenchmarkThroughputProcesses): goproxy alone, intercepting HTTPS with a
// CA of its own (never goproxy's built-in one), its transport tuned (1,000
// idle connections per host). It logs {"proxy":"ADDR"} on stderr once it
// listens on 127.0.0.1 and serves until SIGINT or SIGTERM.
//
//	goproxytuned -ca-dir DIR [-origin-ca FILE]
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
	"syscall"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/sessionproxy/sessionproxy/proxy/mitm"
	"github.com/sessionproxy/sessionproxy/proxy/upstream"
)

func main() {
	caDir := flag.String("ca-dir", "", "directory of the interception CA (made if missing)")
	originCA := flag.String("origin-ca", "", "PEM file of a CA to trust for origins, besides the system's")
	flag.Parse()
	if *caDir == "" {
		log.Fatal("goproxytuned: -ca-dir is required")
	}
	ca, _, err := mitm.LoadOrCreate(filepath.Join(*caDir, "ca.pem"), filepath.Join(*caDir, "ca-key.pem"), time.Now)
	if err != nil {
		log.Fatal(err)
	}
	var cas []string
	if *originCA != "" {
		cas = append(cas, *originCA)
	}
	roots, err := upstream.LoadRootCAs(cas)
	if err != nil {
		log.Fatal(err)
	}
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = log.New(io.Discard, "", 0)
	gp.Tr = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		MaxIdleConns:        1000,
		MaxIdleConnsPerHost: 1000,
		IdleConnTimeout:     90 * time.Second,
	}
	gp.OnRequest().HandleConnectFunc(func(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: func(h string, _ *goproxy.ProxyCtx) (*tls.Config, error) {
			return ca.TLSConfigForHost(h)
		}}, host
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "{\"proxy\":%q}\n", ln.Addr().String())
	srv := &http.Server{Handler: gp, ErrorLog: log.New(io.Discard, "", 0)}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
