// This file is added to examples/quickstart only by the soak test's build
// (go build -overlay): the quickstart has no endpoint that counts
// goroutines, and the product gets none for the soak's sake. It listens on
// SOAK_DEBUG_ADDR (loopback, chosen by the test) on its own mux, never the
// App's router.

package main

import (
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
)

func init() {
	addr := os.Getenv("SOAK_DEBUG_ADDR")
	if addr == "" {
		return
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		panic("soak debug listener: " + err.Error())
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /goroutines", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(strconv.Itoa(runtime.NumGoroutine())))
	})
	mux.HandleFunc("GET /goroutine-profile", func(w http.ResponseWriter, _ *http.Request) {
		_ = pprof.Lookup("goroutine").WriteTo(w, 1)
	})
	go func() { _ = http.Serve(ln, mux) }()
}
