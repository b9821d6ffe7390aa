//go:build soak

package soak

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

const taskPath = "/run-task/demo/development/"

// runRec is one acknowledged run and what the load did to it.
type runRec struct {
	name  string
	owner int
	task  string
	// sub names the run's callback path at the receiver; "" without one.
	sub        string
	ackedAt    time.Time
	abortTried atomic.Bool
	// ssePhase is the terminal phase a follower saw; "" when none did.
	ssePhase atomic.Value
}

// book holds every acknowledged run.
type book struct {
	mu     sync.Mutex
	byName map[string]*runRec
	order  []*runRec
	// dupNames are names acknowledged for two different submits.
	dupNames []string

	submits, acked, unknown, gaveUp, retries atomic.Int64
}

func (b *book) add(r *runRec) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, dup := b.byName[r.name]; dup {
		b.dupNames = append(b.dupNames, r.name)
		return
	}
	b.byName[r.name] = r
	b.order = append(b.order, r)
	b.acked.Add(1)
}

// recent picks one of the last 512 acknowledged runs; nil before any.
func (b *book) recent(rng *rand.Rand) *runRec {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.order) == 0 {
		return nil
	}
	n := min(len(b.order), 512)
	return b.order[len(b.order)-1-rng.IntN(n)]
}

// newest is the last acknowledged run; nil before any.
func (b *book) newest() *runRec {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.order) == 0 {
		return nil
	}
	return b.order[len(b.order)-1]
}

func (b *book) runs() []*runRec {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]*runRec(nil), b.order...)
}

// load is the traffic against one quickstart: both users' clients, the
// receiver, and what they saw.
type load struct {
	base   string
	tokens [2]string
	hc     *http.Client // requests with a bounded time
	stream *http.Client // event streams: no overall timeout
	rcv    *receiver
	rec    *recorder
	book   *book
	gate   *gate
	subSeq atomic.Int64
	badSeq atomic.Int64

	sseDone, sseResumed atomic.Int64
	// protocol collects broken promises of the event stream.
	protoMu  sync.Mutex
	protocol []string

	oversize []byte
}

func newLoad(base string, tokens [2]string, rcv *receiver, conns int) *load {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = conns
	str := http.DefaultTransport.(*http.Transport).Clone()
	str.MaxIdleConnsPerHost = conns
	big := append([]byte(`{"message":"`), bytes.Repeat([]byte("a"), 10<<20)...)
	return &load{
		base: base, tokens: tokens, rcv: rcv, rec: newRecorder(),
		book:     &book{byName: map[string]*runRec{}},
		gate:     newGate(),
		hc:       &http.Client{Transport: tr, Timeout: 30 * time.Second},
		stream:   &http.Client{Transport: str},
		oversize: append(big, `"}`...),
	}
}

// closeIdle closes the idle keep-alive connections on both sides of the
// process: the load's to it, and its callback client's to the receiver.
func (l *load) closeIdle() {
	l.hc.CloseIdleConnections()
	l.stream.CloseIdleConnections()
	l.rcv.closeIdle()
}

// exchange is one request to send, possibly again.
type exchange struct {
	op     string
	method string
	path   string
	body   []byte
	header map[string]string
	owner  int // -1: no Authorization
	// expect says which statuses a valid request may get; nil for a bad
	// request, whose expected statuses are in badExpect.
	expect    func(code int) bool
	badExpect []int
}

// do sends x once and records what happened. It returns the status (0
// when no answer came) and the body. An exchange cut by the end of the
// load (ctx) is neither counted nor kept.
func (l *load) do(ctx context.Context, x exchange) (int, []byte, bool) {
	var body io.Reader
	if x.body != nil {
		body = bytes.NewReader(x.body)
	}
	req, err := http.NewRequestWithContext(ctx, x.method, l.base+x.path, body)
	if err != nil {
		panic(err) // the harness built a bad request
	}
	if x.owner >= 0 {
		req.Header.Set("Authorization", "Bearer "+l.tokens[x.owner])
	}
	if x.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range x.header {
		req.Header[k] = []string{v} // as given: some carry bytes Set would not canonicalize away
	}
	sent := time.Now()
	resp, err := l.hc.Do(req)
	var b []byte
	code := 0
	if err == nil {
		b, err = io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		code = resp.StatusCode
		if err != nil {
			code = 0
		}
	}
	if ctx.Err() != nil {
		return 0, nil, false
	}
	o := outcome{op: x.op, valid: x.expect != nil, code: code, sent: sent, answered: time.Now()}
	if err != nil {
		o.detail = err.Error()
	} else {
		o.detail = truncate(string(b), 300)
	}
	l.rec.count(x.op, code)
	switch {
	case code == 0 || code >= 500:
		l.rec.add(&l.rec.trouble, o)
	case x.expect != nil && !x.expect(code):
		l.rec.add(&l.rec.trouble, o)
	case x.expect == nil && code/100 == 2:
		l.rec.add(&l.rec.acceptedBad, o)
	case x.expect == nil && !contains(x.badExpect, code):
		l.rec.add(&l.rec.oddBad, o)
	}
	return code, b, true
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func is2xx(code int) bool { return code/100 == 2 }

// submitSpec is one valid submit.
type submitSpec struct {
	op       string
	task     string
	input    any
	owner    int
	keyed    bool
	wait     bool
	callback bool
	priority int
}

// submit sends a valid run. A keyed submit that gets no answer or a 5xx is
// sent again with the same key until it is answered (for at most two
// minutes); an unkeyed one cannot be, and its fate stays unknown. It
// returns the acknowledged run, or nil.
func (l *load) submit(ctx context.Context, s submitSpec) *runRec {
	l.book.submits.Add(1)
	body, err := json.Marshal(s.input)
	if err != nil {
		panic(err)
	}
	q := url.Values{}
	var sub string
	if s.callback {
		sub = strconv.FormatInt(l.subSeq.Add(1), 10)
		q.Set("webhook", l.rcv.url(sub))
		q.Set("webhook_events_filter", "start,completed")
	}
	if s.priority != 0 {
		q.Set("priority", strconv.Itoa(s.priority))
	}
	path := taskPath + s.task
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	hdr := map[string]string{}
	if s.keyed {
		hdr["Idempotency-Key"] = fmt.Sprintf("soak-%d-%d", time.Now().UnixNano(), rand.Uint64())
	}
	if s.wait {
		hdr["Prefer"] = "wait=5"
	}
	x := exchange{op: s.op, method: http.MethodPost, path: path, body: body, header: hdr, owner: s.owner, expect: is2xx}
	first := time.Now()
	for {
		sent := time.Now()
		code, b, ok := l.do(ctx, x)
		if !ok {
			return nil
		}
		if is2xx(code) {
			var a struct {
				Name string `json:"name"`
			}
			if err := json.Unmarshal(b, &a); err != nil || a.Name == "" {
				l.rec.add(&l.rec.trouble, outcome{op: s.op, valid: true, code: code, detail: "2xx without a run name: " + truncate(string(b), 200), sent: sent, answered: time.Now()})
				return nil
			}
			if !s.wait && s.op == "submit" {
				l.rec.addLatency(time.Since(sent))
			}
			r := &runRec{name: a.Name, owner: s.owner, task: s.task, sub: sub, ackedAt: time.Now()}
			l.book.add(r)
			return r
		}
		if code != 0 && code < 500 {
			return nil // unexpected; do kept it
		}
		if !s.keyed {
			l.book.unknown.Add(1)
			return nil
		}
		if time.Since(first) > 2*time.Minute {
			l.book.gaveUp.Add(1)
			return nil
		}
		l.book.retries.Add(1)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// op is one operation of the mix, chosen by weight.
type op struct {
	weight int
	run    func(l *load, ctx context.Context, rng *rand.Rand)
}

// mix is the load: per 1,000 operations. SSE followers run beside it.
var mix = []op{
	{300, func(l *load, ctx context.Context, rng *rand.Rand) { l.submit(ctx, randomRun(rng, "submit")) }},
	{100, func(l *load, ctx context.Context, rng *rand.Rand) {
		s := randomRun(rng, "submit callback")
		s.callback = true
		l.submit(ctx, s)
	}},
	{100, func(l *load, ctx context.Context, rng *rand.Rand) {
		s := randomRun(rng, "submit wait")
		s.wait = true
		l.submit(ctx, s)
	}},
	{150, (*load).getRun},
	{100, (*load).listRuns},
	{60, (*load).submitAndAbort},
	{10, (*load).bad},
}

// randomRun is a valid echo, sleep or flaky run; half carry an
// Idempotency-Key. Flaky fails up to 4 of the 5 attempts its policy allows:
// it succeeds, unless something else (a restart) spends an attempt.
func randomRun(rng *rand.Rand, opName string) submitSpec {
	s := submitSpec{op: opName, owner: rng.IntN(2), keyed: rng.IntN(2) == 0}
	if rng.IntN(10) == 0 {
		s.priority = rng.IntN(11) - 5
	}
	switch n := rng.IntN(20); {
	case n < 11:
		s.task, s.input = "echo", map[string]any{"message": fmt.Sprintf("soak %d", rng.Uint32())}
	case n < 18:
		s.task, s.input = "sleep", map[string]any{"seconds": 0.05 + rng.Float64()*0.95}
	default:
		s.task, s.input = "flaky", map[string]any{"failures": rng.IntN(5)}
	}
	return s
}

func (l *load) getRun(ctx context.Context, rng *rand.Rand) {
	r := l.book.recent(rng)
	if r == nil {
		return
	}
	l.do(ctx, exchange{op: "get run", method: http.MethodGet, path: "/run/" + r.name, owner: r.owner,
		expect: func(c int) bool { return c == http.StatusOK }})
}

func (l *load) listRuns(ctx context.Context, rng *rand.Rand) {
	owner := rng.IntN(2)
	q := url.Values{"limit": {strconv.Itoa(1 + rng.IntN(100))}}
	switch rng.IntN(4) {
	case 0:
		q.Set("phase", "succeeded")
	case 1:
		q.Set("task", "demo/development/sleep")
	case 2:
		if owner == 0 {
			q.Set("all", "true") // owner 0 is in the admin group
		}
	}
	ok200 := func(c int) bool { return c == http.StatusOK }
	code, b, _ := l.do(ctx, exchange{op: "list runs", method: http.MethodGet, path: "/runs?" + q.Encode(), owner: owner, expect: ok200})
	if code != http.StatusOK || rng.IntN(5) != 0 {
		return
	}
	var page struct {
		NextCursor string `json:"next_cursor"`
	}
	if json.Unmarshal(b, &page) == nil && page.NextCursor != "" {
		q.Set("cursor", page.NextCursor)
		l.do(ctx, exchange{op: "list runs", method: http.MethodGet, path: "/runs?" + q.Encode(), owner: owner, expect: ok200})
	}
}

// submitAndAbort starts a sleep of 2 to 4 s and aborts it a moment later:
// before it is placed, while it runs, or (after a restart) later.
func (l *load) submitAndAbort(ctx context.Context, rng *rand.Rand) {
	r := l.submit(ctx, submitSpec{op: "submit", task: "sleep", owner: rng.IntN(2), keyed: true,
		input: map[string]any{"seconds": 2 + 2*rng.Float64()}})
	if r == nil {
		return
	}
	select {
	case <-ctx.Done():
		return
	case <-time.After(time.Duration(rng.Int64N(int64(800 * time.Millisecond)))):
	}
	r.abortTried.Store(true)
	l.do(ctx, exchange{op: "abort", method: http.MethodPost, path: "/run/" + r.name + "/abort?reason=soak", owner: r.owner,
		expect: func(c int) bool { return c == http.StatusAccepted || c == http.StatusConflict }})
}

// bad sends one of the bad requests in turn. Each must get its 4xx and
// must cost no other request anything.
func (l *load) bad(ctx context.Context, rng *rand.Rand) {
	echo := []byte(`{"message":"hi"}`)
	x := exchange{method: http.MethodPost, path: taskPath + "echo", body: echo, owner: rng.IntN(2)}
	switch l.badSeq.Add(1) % 7 {
	case 0:
		x.op, x.body, x.badExpect = "bad: JSON", []byte(`{"message":`), []int{400}
	case 1:
		x.op, x.body, x.badExpect = "bad: bytes in body", []byte("{\"message\":\"\xff\xfe\xed\"}"), []int{400, 422}
	case 2:
		x.op, x.badExpect = "bad: bytes in key", []int{400, 422}
		x.header = map[string]string{"Idempotency-Key": "soak-\xff\xfe"}
	case 3:
		x.op, x.badExpect = "bad: bytes in webhook", []int{400, 422}
		x.path += "?webhook=" + url.QueryEscape(l.rcv.srv.URL+"/bad/\xff\xfe")
	case 4:
		x.op, x.path, x.badExpect = "bad: unknown task", taskPath+"no-such-task", []int{404}
	case 5:
		x.op, x.owner, x.badExpect = "bad: no token", -1, []int{401}
	case 6:
		x.op, x.body, x.badExpect = "bad: oversize", l.oversize, []int{413}
	}
	l.do(ctx, x)
}

// follow reads a run's event stream to its terminal event, resuming with
// Last-Event-ID when the stream is cut (a restart). Event ids must grow.
func (l *load) follow(ctx context.Context, r *runRec) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var lastID string
	var lastSeq int64
	for range 50 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.base+"/run/"+r.name+"/events", nil)
		if err != nil {
			panic(err)
		}
		req.Header.Set("Authorization", "Bearer "+l.tokens[r.owner])
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		sent := time.Now()
		resp, err := l.stream.Do(req)
		if ctx.Err() != nil {
			if resp != nil {
				resp.Body.Close()
			}
			return
		}
		if err != nil {
			l.rec.count("events", 0)
			l.rec.add(&l.rec.trouble, outcome{op: "events", valid: true, detail: err.Error(), sent: sent, answered: time.Now()})
			pause(ctx, 200*time.Millisecond)
			continue
		}
		l.rec.count("events", resp.StatusCode)
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
			resp.Body.Close()
			l.rec.add(&l.rec.trouble, outcome{op: "events", valid: true, code: resp.StatusCode, detail: string(b), sent: sent, answered: time.Now()})
			if resp.StatusCode < 500 {
				return
			}
			pause(ctx, 200*time.Millisecond)
			continue
		}
		terminal, err := l.readEvents(resp.Body, r, &lastID, &lastSeq)
		resp.Body.Close()
		if terminal != "" {
			r.ssePhase.Store(terminal)
			l.sseDone.Add(1)
			return
		}
		if ctx.Err() != nil {
			return
		}
		detail := "stream ended before the terminal event"
		if err != nil {
			detail += ": " + err.Error()
		}
		l.rec.count("events (cut)", 0)
		l.rec.add(&l.rec.trouble, outcome{op: "events (cut)", valid: true, detail: detail, sent: sent, answered: time.Now()})
		l.sseResumed.Add(1)
		pause(ctx, 200*time.Millisecond)
	}
}

// readEvents reads one stream and returns the terminal phase, or "" when
// the stream ended before it.
func (l *load) readEvents(body io.Reader, r *runRec, lastID *string, lastSeq *int64) (string, error) {
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var id, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id:"):
			id = strings.TrimSpace(strings.TrimPrefix(line, "id:"))
		case strings.HasPrefix(line, "data:"):
			data = strings.TrimSpace(strings.TrimPrefix(line, "data:"))
		case line == "" && data != "":
			var ev struct {
				Seq   int64  `json:"seq"`
				Run   string `json:"run"`
				Phase string `json:"phase"`
			}
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				l.broken(fmt.Sprintf("run %s: undecodable event %q", r.name, truncate(data, 200)))
			}
			if ev.Seq <= *lastSeq || id != strconv.FormatInt(ev.Seq, 10) || ev.Run != r.name {
				l.broken(fmt.Sprintf("run %s: event id %s seq %d run %s after seq %d", r.name, id, ev.Seq, ev.Run, *lastSeq))
			}
			*lastSeq, *lastID = ev.Seq, id
			id, data = "", ""
			if terminalPhase(ev.Phase) {
				return ev.Phase, nil
			}
		}
	}
	return "", sc.Err()
}

func (l *load) broken(s string) {
	l.protoMu.Lock()
	defer l.protoMu.Unlock()
	l.protocol = append(l.protocol, s)
}

func terminalPhase(p string) bool {
	switch p {
	case "succeeded", "failed", "aborted", "timed_out":
		return true
	}
	return false
}

func pause(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
