package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// wrkOK is wrk 4.1's output for a clean run with --latency.
const wrkOK = `Running 5s test @ http://127.0.0.1:8092/run-task/demo/development/echo
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.82ms    2.58ms  25.38ms   74.17%
    Req/Sec     4.72k   512.33     5.80k    70.00%
  Latency Distribution
     50%    6.33ms
     75%    8.01ms
     90%    9.97ms
     99%   15.24ms
  47001 requests in 5.01s, 13.72MB read
Requests/sec:   9386.24
Transfer/sec:      2.74MB
`

func TestParseWrk(t *testing.T) {
	t.Parallel()
	res, err := parseWrk([]byte(wrkOK))
	require.NoError(t, err)
	require.InDelta(t, 9386.24, res.rate, 1e-9)
	require.Equal(t, "6.33ms", res.p50)
	require.Equal(t, "15.24ms", res.p99)

	// A run with failed replies or broken sockets is no measurement.
	_, err = parseWrk([]byte(wrkOK + "  Non-2xx or 3xx responses: 12\n"))
	require.ErrorContains(t, err, "12 non-2xx replies")
	_, err = parseWrk([]byte(wrkOK + "  Socket errors: connect 0, read 3, write 0, timeout 0\n"))
	require.ErrorContains(t, err, "Socket errors")
	_, err = parseWrk([]byte("unable to connect to 127.0.0.1:1 Connection refused\n"))
	require.ErrorContains(t, err, "no rate")
}
