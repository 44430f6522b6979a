package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// fuzzServer serves the client end of a pipe: whatever the client writes
// is read and dropped, and the server sends answer and closes. The client
// end has a deadline, so a client that would wait forever fails instead.
func fuzzServer(t *testing.T, answer []byte) net.Conn {
	client, server := net.Pipe()
	client.SetDeadline(time.Now().Add(10 * time.Second))
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		io.Copy(io.Discard, server)
	}()
	go func() {
		server.Write(answer)
		server.Close()
	}()
	t.Cleanup(func() {
		client.Close()
		<-drained
	})
	return client
}

// stalled reports whether err is the fuzz deadline: the client waited on
// a server that had said everything and closed.
func stalled(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// FuzzH2Response: any bytes from an HTTP/2 server end the request with a
// response or an error, and its body with the end or an error: no panic,
// and no wait once the server has closed.
func FuzzH2Response(f *testing.F) {
	frames := func(write func(fr *http2.Framer)) []byte {
		var b bytes.Buffer
		write(http2.NewFramer(&b, nil))
		return b.Bytes()
	}
	head := func(fields ...string) []byte {
		var b bytes.Buffer
		enc := hpack.NewEncoder(&b)
		for i := 0; i+1 < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return b.Bytes()
	}
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(":status", "200", "content-length", "5"), EndHeaders: true})
		fr.WriteData(1, true, []byte("hello"))
	}))
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(":status", "103", "link", "</a>"), EndHeaders: true})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(":status", "200"), EndHeaders: true})
		fr.WriteDataPadded(1, false, []byte("body"), []byte{0, 0})
		fr.WriteWindowUpdate(0, 1000)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head("x-sum", "1"), EndHeaders: true, EndStream: true})
	}))
	f.Add(frames(func(fr *http2.Framer) {
		fr.WriteSettings()
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head(":status", "200"), EndHeaders: false})
		fr.WriteContinuation(1, true, head("a", "b"))
		fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)
	}))
	f.Fuzz(func(t *testing.T, answer []byte) {
		c, err := NewH2Conn(fuzzServer(t, answer), Preface{}, 1<<16, nil)
		if err != nil {
			return // the pipe closed before the preface was written
		}
		defer c.Close()
		req, _ := http.NewRequest("GET", "https://origin.test/", nil)
		resp, err := c.RoundTrip(req, 0)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		if stalled(err) {
			t.Fatalf("the request waited on a closed server: %v", err)
		}
	})
}

// FuzzH1Response: any bytes from an HTTP/1.1 server end the request with a
// response or an error, and its body with the end or an error: no panic, no
// wait once the server has closed, and a final response of a known length
// never gives more.
func FuzzH1Response(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nframes"))
	f.Add([]byte("HTTP/1.0 200 OK\r\n\r\nto the end"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"))
	f.Fuzz(func(t *testing.T, answer []byte) {
		c := NewH1Conn(fuzzServer(t, answer), 1<<12, 0, nil)
		defer c.Close()
		req, _ := http.NewRequest("GET", "http://origin.test/", nil)
		resp, err := c.RoundTrip(req, "", nil, nil)
		var body []byte
		if err == nil {
			body, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 200 && resp.StatusCode != http.StatusSwitchingProtocols &&
				resp.ContentLength >= 0 && int64(len(body)) > resp.ContentLength {
				t.Fatalf("read %d bytes of a body of Content-Length %d", len(body), resp.ContentLength)
			}
		}
		if stalled(err) {
			t.Fatalf("the request waited on a closed server: %v", err)
		}
	})
}
