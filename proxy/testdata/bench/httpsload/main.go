// Command httpsload is the HTTPS load generator of the proxy benchmark
// (../main.go): -c keep-alive clients, each with a connection of its own
// tunnelled through the proxy with CONNECT and TLS trusting the proxy's CA
// (-proxy-ca), send GETs for -url for -d, reading every body. It prints
// {"requests":N,"errors":N,"seconds":S} on stdout; a request is an error
// unless it got a 200 and its whole body.
//
//	httpsload -proxy ADDR -proxy-ca FILE -url URL [-c 32] [-d 5s]
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	proxyAddr := flag.String("proxy", "", "proxy host:port")
	caFile := flag.String("proxy-ca", "", "PEM file of the proxy's interception CA")
	target := flag.String("url", "", "https URL to fetch")
	conns := flag.Int("c", 32, "clients, one connection each")
	dur := flag.Duration("d", 5*time.Second, "how long to send")
	flag.Parse()
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatalf("httpsload: no certificate in %s", *caFile)
	}
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*dur)
	for range *conns {
		// A transport per client: one connection, one tunnel, kept alive.
		tr := &http.Transport{
			Proxy:               http.ProxyURL(&url.URL{Scheme: "http", Host: *proxyAddr}),
			TLSClientConfig:     &tls.Config{RootCAs: roots},
			MaxConnsPerHost:     1,
			MaxIdleConnsPerHost: 1,
		}
		client := &http.Client{Transport: tr}
		wg.Go(func() {
			defer tr.CloseIdleConnections()
			for time.Now().Before(deadline) {
				if fetch(client, *target) {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"requests": ok.Load(), "errors": failed.Load(), "seconds": time.Since(start).Seconds(),
	})
}

func fetch(c *http.Client, target string) bool {
	resp, err := c.Get(target)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	return err == nil && resp.StatusCode == http.StatusOK && (resp.ContentLength < 0 || n == resp.ContentLength)
}
