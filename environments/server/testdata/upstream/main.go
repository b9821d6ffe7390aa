// Command upstream is the server the server environment tests start and
// proxy to. It listens on 127.0.0.1:$PORT and serves:
//
//	GET  /pid      its process id
//	GET  /whoami   the subject header the proxy set
//	GET  /crash    exits with status 3 at once
//	GET  /stream   writes "first", flushes, then holds the response open
//	               until the client leaves
//	POST /discard  reads the body and answers its length
//	GET  /ws       a WebSocket that echoes every message
//	GET  /env      CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES, on
//	               two lines
//	GET  /sleep    waits ?ms= milliseconds, then answers its process id
//
// With UPSTREAM_IGNORE_TERM=1 it ignores SIGTERM, to test the SIGKILL that
// follows the grace period.
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	if os.Getenv("UPSTREAM_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /pid", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, os.Getpid())
	})
	// whoami answers the subject as a CGI or WSGI server reads it: every
	// header that maps to HTTP_X_TASKGATE_SUBJECT, underscores or dashes,
	// joined by commas.
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		var vals []string
		for k, vs := range r.Header {
			if http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-")) == "X-Taskgate-Subject" {
				vals = append(vals, vs...)
			}
		}
		sort.Strings(vals)
		fmt.Fprint(w, strings.Join(vals, ","))
	})
	mux.HandleFunc("GET /cookies", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Join(r.Header.Values("Cookie"), "|"))
	})
	mux.HandleFunc("GET /crash", func(http.ResponseWriter, *http.Request) {
		log.Print("crashing on request")
		os.Exit(3)
	})
	mux.HandleFunc("GET /stream", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "first")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
	mux.HandleFunc("POST /discard", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /env", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s\n%s\n", os.Getenv("CUDA_VISIBLE_DEVICES"), os.Getenv("NVIDIA_VISIBLE_DEVICES"))
	})
	mux.HandleFunc("GET /sleep", func(w http.ResponseWriter, r *http.Request) {
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-r.Context().Done():
		}
		fmt.Fprint(w, os.Getpid())
	})
	upgrader := websocket.Upgrader{}
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			kind, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(kind, append([]byte("echo: "), msg...)); err != nil {
				return
			}
		}
	})
	log.Printf("listening on 127.0.0.1:%s", os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), mux))
}
