module github.com/sessionproxy/sessionproxy

go 1.26.0

require (
	github.com/andybalholm/brotli v1.3.0
	github.com/armon/go-socks5 v0.0.0-20160902184237-e75332964ef5
	github.com/elazarl/goproxy v1.9.4
	github.com/klauspost/compress v1.20.4
	github.com/patrickmn/go-cache v2.1.0+incompatible
	golang.org/x/net v0.62.0
	gopkg.in/yaml.v3 v3.0.1
)

require golang.org/x/text v0.43.0 // indirect
