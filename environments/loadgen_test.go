package environments_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The throughput benchmarks drive the servers with a wrk-like client:
// every client goroutine owns one keep-alive connection and writes a
// request built once, then reads the status line, the headers it needs and
// the body. Go's http.Client spends several times the CPU per request,
// which on a 2-core machine is taken from the server being measured; the
// bare chi baseline and the stacks under test get the same generator.

// loadConns is the number of concurrent connections (clients) of a load
// run, as wrk -c.
const loadConns = 64

// rawRequest builds an HTTP/1.1 request with a bearer token and, when body
// is not nil, a JSON body.
func rawRequest(method, rawURL, token string, body []byte) (addr string, req []byte, err error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: taskgate-bench\r\n", method, u.RequestURI(), u.Host)
	if token != "" {
		fmt.Fprintf(&b, "Authorization: Bearer %s\r\n", token)
	}
	if body != nil {
		fmt.Fprintf(&b, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(body))
	}
	b.WriteString("\r\n")
	b.Write(body)
	return u.Host, b.Bytes(), nil
}

// rawConn is one client's keep-alive connection.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(addr string) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{c: c, r: bufio.NewReaderSize(c, 16<<10)}, nil
}

// do sends req and reads one response: its status and body (body is
// reused by the next call).
func (rc *rawConn) do(req []byte, body []byte) (int, []byte, error) {
	if err := rc.c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return 0, nil, err
	}
	if _, err := rc.c.Write(req); err != nil {
		return 0, nil, err
	}
	line, err := rc.r.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, nil, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		h, err := rc.r.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil {
				return 0, nil, fmt.Errorf("bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		}
	}
	if chunked || length < 0 {
		// The benchmarked handlers all send a length; anything else is a
		// server change the generator should not hide.
		return status, nil, errors.New("response without Content-Length")
	}
	body = append(body[:0], make([]byte, length)...)
	if _, err := io.ReadFull(rc.r, body); err != nil {
		return status, nil, err
	}
	return status, body, nil
}

// loadResult is one load run.
type loadResult struct {
	requests int64
	elapsed  time.Duration
	// lat are per-request latencies (a sample of at most one per
	// connection per millisecond, enough for p50/p99).
	lat []time.Duration
}

func (r loadResult) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// runLoad sends b.N copies of req from loadConns connections and fails the
// benchmark on any transport error or status other than 200 or 202. check,
// when not nil, is called with each response body.
func runLoad(b *testing.B, addr string, req []byte, check func([]byte) error) loadResult {
	b.Helper()
	conns := make([]*rawConn, loadConns)
	for i := range conns {
		rc, err := dialRaw(addr)
		if err != nil {
			b.Fatal(err)
		}
		conns[i] = rc
		defer rc.c.Close()
	}
	var (
		next   atomic.Int64
		failed atomic.Bool
		mu     sync.Mutex
		lat    []time.Duration
		wg     sync.WaitGroup
		errOne sync.Once
		err1   error
	)
	fail := func(err error) {
		errOne.Do(func() { err1 = err })
		failed.Store(true)
	}
	n := int64(b.N)
	b.ResetTimer()
	start := time.Now()
	for _, rc := range conns {
		wg.Go(func() {
			var body []byte
			var mine []time.Duration
			var lastSample time.Time
			for next.Add(1) <= n && !failed.Load() {
				t := time.Now()
				status, got, err := rc.do(req, body)
				if err != nil {
					fail(err)
					return
				}
				body = got
				if status != 200 && status != 202 {
					fail(fmt.Errorf("status %d: %s", status, got))
					return
				}
				if check != nil {
					if err := check(got); err != nil {
						fail(err)
						return
					}
				}
				if now := time.Now(); now.Sub(lastSample) >= time.Millisecond {
					mine = append(mine, now.Sub(t))
					lastSample = now
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if err1 != nil {
		b.Fatal(err1)
	}
	return loadResult{requests: n, elapsed: elapsed, lat: lat}
}
