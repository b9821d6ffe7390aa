package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// Config configures a Queue. The zero value is a good default.
//
// A queued request is a run of a task that the queue registers at Build,
// "taskgate-queue/<environment name>/replay", so it is durable (stored
// before the 202), scheduled under AppConfig.Resources with priorities,
// abortable, and followed by events, logs and signed webhook callbacks like
// any run. The run's inputs are the stored request (method, path, query,
// safe headers, body, client IP: never credentials); its outputs are the
// recorded response. The replay serves the request with the environment's
// own handler, in process, as the submitting caller (see
// middleware.IdentityFromContext), not behind authentication (the caller
// was verified at submit; Auth.RequiredGroup is checked again), and within
// Limits.MaxInFlight: a replay takes a slot of the same limit as the
// requests the app serves directly, so the two together never exceed it.
// A replay waits for its slot as long as its Timeout allows, where a
// direct request would get 429 after QueueTimeout; the queue routes
// themselves are not counted.
//
// Raw credentials: a handler that forwards the caller's credentials
// downstream (middleware.CredentialsFromContext, ForwardingTransport) gets
// them during a replay only while the process that accepted the submit is
// still running: they are kept in memory, keyed by request, and never
// stored. After a restart, or on another node, a replay has the caller's
// Identity but no credentials.
//
// Processes that run node agents must build the App (App.Handler) so that
// the replay task is registered there too.
type Config struct {
	// MaxResponseBytes caps the body of a replayed response; a larger one
	// fails the request with ErrResponseTooLarge. Default
	// DefaultMaxResponseBytes, at most MaxResponseLimit. The recorded
	// response is stored as the run's outputs, so the dispatcher's
	// MaxOutputBytes (1 MiB by default) must leave room for it: base64
	// makes binary bodies a third larger.
	MaxResponseBytes int64
	// Timeout bounds one replay; default tasks.DefaultTimeout.
	Timeout time.Duration
	// MaxStartTimeout caps X-Queue-Start-Timeout; default 24 hours.
	MaxStartTimeout time.Duration
}

// Limits and defaults of Config.
const (
	// DefaultMaxResponseBytes keeps a base64-encoded response under the
	// dispatcher's default MaxOutputBytes (1 MiB).
	DefaultMaxResponseBytes = 512 << 10
	// MaxResponseLimit is the largest MaxResponseBytes.
	MaxResponseLimit = 10 << 20
	// DefaultMaxStartTimeout caps X-Queue-Start-Timeout by default.
	DefaultMaxStartTimeout = 24 * time.Hour
)

// taskName is the name of the replay task within its domain, the
// environment's name, of project environments.QueueProject.
const taskName = "replay"

// Priorities of queued requests (X-Queue-Priority): low runs after every
// normal request that waits with it.
const (
	PriorityNormal = 0
	PriorityLow    = -10
)

// The statuses of a queued request, as fal names them.
const (
	StatusInQueue    = "IN_QUEUE"
	StatusInProgress = "IN_PROGRESS"
	StatusCompleted  = "COMPLETED"
)

// Errors of a replay, kept in the run's error.
var (
	// ErrResponseTooLarge: the handler wrote more than
	// Config.MaxResponseBytes.
	ErrResponseTooLarge = errors.New("queued response body too large")
	// ErrStartTimeout: the request had not started when its
	// X-Queue-Start-Timeout passed.
	ErrStartTimeout = errors.New("start timeout")
	// ErrForbidden: the submitting caller is no longer allowed in the
	// environment (Auth.RequiredGroup) when the request is replayed.
	ErrForbidden = errors.New("caller not allowed in the environment")
)

func (c *Config) validate() error {
	if c.MaxResponseBytes < 0 || c.MaxResponseBytes > MaxResponseLimit {
		return fmt.Errorf("queue: MaxResponseBytes %d outside [0, %d]", c.MaxResponseBytes, MaxResponseLimit)
	}
	if c.Timeout < 0 || c.MaxStartTimeout < 0 {
		return errors.New("queue: negative timeout")
	}
	return nil
}

// Request is what a queued request stores: the replay task's input.
// Credentials are never part of it.
type Request struct {
	Method string `json:"method"`
	Host   string `json:"host,omitempty"`
	// Path is the escaped path within the environment, with its leading "/".
	Path     string              `json:"path"`
	RawQuery string              `json:"raw_query,omitempty"`
	Header   map[string][]string `json:"headers,omitempty" doc:"Content-Type, Accept, Accept-Language and custom X- headers, minus anything credential-like."`
	// Body is the request body when it is valid UTF-8 without NUL (kept
	// exactly), else BodyBase64 holds it.
	Body       *string `json:"body,omitempty"`
	BodyBase64 []byte  `json:"body_base64,omitempty"`
	ClientIP   string  `json:"client_ip,omitempty"`
	// StartTimeout is X-Queue-Start-Timeout in seconds (0: none), counted
	// from the run's creation.
	StartTimeout float64 `json:"start_timeout,omitempty"`
	// CredentialsRef names the caller's credentials in the memory of the
	// process that took the submit. It is not a credential: a replay gets
	// the credentials only when it runs as their owner, and only there.
	CredentialsRef string `json:"credentials_ref,omitempty"`
}

// Response is the recorded response: the replay task's output.
type Response struct {
	StatusCode int                 `json:"status_code"`
	Header     map[string][]string `json:"headers,omitempty"`
	Body       *string             `json:"body,omitempty"`
	BodyBase64 []byte              `json:"body_base64,omitempty"`
}

// setBody stores b as text when it is valid UTF-8 without NUL (JSON
// strings keep it exactly, and the store takes it; see storable), else as
// base64.
func setBody(b []byte, text **string, b64 *[]byte) {
	switch {
	case len(b) == 0:
	case utf8.Valid(b) && bytes.IndexByte(b, 0) < 0:
		s := string(b)
		*text = &s
	default:
		*b64 = b
	}
}

func getBody(text *string, b64 []byte) []byte {
	if text != nil {
		return []byte(*text)
	}
	return b64
}

// Queue is the queue of one AppEnvironment: put it in AppConfig.Queue.
// Create it with New. Its state (the replay task, the credentials held in
// memory) lives as long as the environment, across Builds: the replay
// task can be registered once per registry only.
type Queue struct {
	cfg Config

	// Set by the first Mount (bind), then fixed.
	env      string
	settings *environments.Settings
	def      *tasks.Definition
	acquire  func(context.Context) (context.Context, func(), error) // a slot of the environment's max_inputs

	mu      sync.Mutex
	deps    *environments.Deps
	handler http.Handler
	subbed  map[*dispatch.Dispatcher]bool
	creds   map[string]heldCredentials // by CredentialsRef
	refs    map[string]string          // run name → CredentialsRef, until it completes
	timers  map[string]*time.Timer     // start timeouts by run name
	checks  map[string]*time.Timer     // rechecks of held requests by run name
	// recheck is how often a request whose credentials are held is read
	// back from the store, in case its terminal event never reached this
	// process (heldRecheckInterval).
	recheck time.Duration
}

var _ environments.Queue = (*Queue)(nil)

// heldRecheckInterval is how often a held request is checked against the
// store: its completion normally arrives as an event, but one can be lost
// (a notification overflow, a PostgreSQL reconnect) when another process
// replays it, and the raw credentials must not stay in memory for good.
const heldRecheckInterval = time.Minute

// heldCredentials are a caller's raw credentials, kept in memory for the
// replay of one queued request.
type heldCredentials struct {
	subject string
	creds   middleware.Credentials
}

// New checks cfg and applies its defaults.
func New(cfg Config) (*Queue, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.MaxResponseBytes == 0 {
		cfg.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if cfg.MaxStartTimeout == 0 {
		cfg.MaxStartTimeout = DefaultMaxStartTimeout
	}
	return &Queue{
		cfg:    cfg,
		subbed: map[*dispatch.Dispatcher]bool{},
		creds:  map[string]heldCredentials{},
		refs:   map[string]string{},
		timers: map[string]*time.Timer{},
		checks: map[string]*time.Timer{},

		recheck: heldRecheckInterval,
	}, nil
}

// MustNew is New that panics on error.
func MustNew(cfg Config) *Queue {
	q, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return q
}

// Mount implements environments.Queue: it registers the queue routes on
// m.API and the replay task in m.Deps.Registry; m.App serves the replays.
func (q *Queue) Mount(m *environments.QueueMount) (err error) {
	name := m.Settings.Name
	if m.Deps.Dispatcher == nil || m.Deps.Registry == nil {
		return fmt.Errorf("environment %s: Queue needs an App with a Dispatcher", name)
	}
	if err := q.bind(m.Settings, m.Resources, m.Acquire); err != nil {
		return err
	}
	switch def, ok := m.Deps.Registry.Lookup(environments.QueueProject, name, taskName); {
	case !ok:
		if err := m.Deps.Registry.Register(q.def); err != nil {
			return fmt.Errorf("environment %s: queue: %w", name, err)
		}
	case def != q.def:
		return fmt.Errorf("environment %s: queue: task %s is registered by something else", name, def.ID())
	}
	q.attach(m.Deps, m.App)

	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("environment %s: queue routes: %v", name, p)
		}
	}()
	q.register(m.API)
	q.registerFal(m.API)
	return nil
}

// bind ties q to the environment of s at its first Mount, defining the
// replay task, whose replays run under res and take their slots with
// acquire (nil: no limit). A later Mount must be of the same environment.
func (q *Queue) bind(s *environments.Settings, res tasks.Resources, acquire func(context.Context) (context.Context, func(), error)) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.def != nil {
		if q.env != s.Name {
			return fmt.Errorf("environment %s: queue: the queue already serves environment %s", s.Name, q.env)
		}
		return nil
	}
	if acquire == nil {
		acquire = func(ctx context.Context) (context.Context, func(), error) { return ctx, func() {}, nil }
	}
	// One attempt: a replayed POST is not idempotent in general, so a
	// failure is reported rather than repeated. A process that drains its
	// runs requeues its running replays without counting a failure (they
	// run again after the restart).
	retry := tasks.NoRetry
	t, err := tasks.Define(environments.QueueProject, s.Name, taskName, q.replay, &tasks.Options{
		Description: "Replays a request queued with POST /queue/submit of environment " + s.Name + ".",
		Resources:   res,
		Retry:       &retry,
		Timeout:     q.cfg.Timeout,
	})
	if err != nil {
		return fmt.Errorf("environment %s: queue: %w", s.Name, err)
	}
	q.env, q.settings, q.def, q.acquire = s.Name, s, t.Definition(), acquire
	return nil
}

// attach makes deps and inner the ones replays use, and forgets the
// in-memory state of requests as they complete.
func (q *Queue) attach(deps *environments.Deps, inner http.Handler) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.deps, q.handler = deps, inner
	if q.subbed[deps.Dispatcher] {
		return
	}
	q.subbed[deps.Dispatcher] = true
	// This process's changes only: reading every other process's change
	// would cost two queries each, and a request replayed elsewhere is
	// forgotten by its recheck (heldRecheckInterval) instead.
	deps.Dispatcher.SubscribeLocal(func(run tasks.Run, ev tasks.Event) {
		if ev.Phase.Terminal() && q.owns(&run) {
			q.forget(run.Name)
		}
	})
}

func (q *Queue) current() (*environments.Deps, http.Handler) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.deps, q.handler
}

// owns reports whether run is a request of this queue.
func (q *Queue) owns(run *tasks.Run) bool {
	return run.Project == environments.QueueProject && run.Domain == q.env && run.Task == taskName
}

// holdCredentials keeps c for the replay of a request about to be
// submitted by subject, and returns the CredentialsRef that names it. It
// is held before the submit because the replay may start before Submit
// returns.
func (q *Queue) holdCredentials(subject string, c middleware.Credentials) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	ref := hex.EncodeToString(b)
	q.mu.Lock()
	defer q.mu.Unlock()
	q.creds[ref] = heldCredentials{subject: subject, creds: c}
	return ref
}

// dropCredentials forgets credentials held under ref.
func (q *Queue) dropCredentials(ref string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.creds, ref)
}

// takeCredentials hands the replay of a request by subject its held
// credentials, once. A run of another owner that names the same ref gets
// nothing.
func (q *Queue) takeCredentials(ref, subject string) (middleware.Credentials, bool) {
	if ref == "" {
		return middleware.Credentials{}, false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	h, ok := q.creds[ref]
	if !ok || h.subject != subject {
		return middleware.Credentials{}, false
	}
	delete(q.creds, ref)
	return h.creds, true
}

// track ties what is held in memory for a submitted request to its run,
// so that it is forgotten when the request completes without a replay
// here (cancelled, timed out, replayed on another node), and arms its
// start timeout.
func (q *Queue) track(d *dispatch.Dispatcher, name, ref string, startTimeout time.Duration) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, held := q.creds[ref]; held {
		q.refs[name] = ref
		q.checks[name] = time.AfterFunc(q.recheck, func() { q.recheckHeld(d, name) })
	}
	if startTimeout > 0 {
		q.timers[name] = time.AfterFunc(startTimeout, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			q.expire(ctx, d, name, startTimeout)
			q.mu.Lock()
			delete(q.timers, name)
			q.mu.Unlock()
		})
	}
}

// forget drops what is kept in memory for a completed request.
func (q *Queue) forget(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if ref, ok := q.refs[name]; ok {
		delete(q.creds, ref)
		delete(q.refs, name)
	}
	if t := q.timers[name]; t != nil {
		t.Stop()
		delete(q.timers, name)
	}
	if t := q.checks[name]; t != nil {
		t.Stop()
		delete(q.checks, name)
	}
}

// recheckHeld forgets a held request that the store says is over (or
// gone), and otherwise looks again after q.recheck.
func (q *Queue) recheckHeld(d *dispatch.Dispatcher, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run, err := d.Get(ctx, name)
	if errors.Is(err, dispatch.ErrNotFound) || (err == nil && run.Phase.Terminal()) {
		q.forget(name)
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if t := q.checks[name]; t != nil {
		t.Reset(q.recheck)
	}
}

// startTimeoutReason is the abort reason of a request that did not start
// in time; queueErrorType recognizes it.
func startTimeoutReason(d time.Duration) string {
	return fmt.Sprintf("%s: not started within %s", ErrStartTimeout, d)
}

// expire aborts the request if it is still waiting to start. Between the
// read and the abort the request may just have been placed; it is then
// cancelled as it starts, which its start timeout allows for.
func (q *Queue) expire(ctx context.Context, d *dispatch.Dispatcher, name string, after time.Duration) {
	run, err := d.Get(ctx, name)
	if err != nil || !waiting(run.Phase) {
		return
	}
	if _, err := d.Abort(ctx, name, startTimeoutReason(after)); err != nil && !errors.Is(err, dispatch.ErrAlreadyDone) {
		if deps, _ := q.current(); deps != nil && deps.Logger != nil {
			deps.Logger.WarnContext(ctx, "queue: abort at start timeout", "env", q.env, "request", name, "err", err)
		}
	}
}

// waiting reports whether a run has not started yet.
func waiting(p tasks.Phase) bool {
	return p == tasks.PhaseQueued || p == tasks.PhaseWaitingForResources
}

// startDeadline is when a request must have started, or zero.
func startDeadline(run *tasks.Run, in *Request) time.Time {
	if in.StartTimeout <= 0 {
		return time.Time{}
	}
	return run.CreatedAt.Add(secondsDuration(in.StartTimeout))
}

func secondsDuration(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// formatSeconds spells a duration in seconds for messages.
func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}
