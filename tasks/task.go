package tasks

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	"github.com/taskgate/taskgate/internal/dnslabel"
)

// Options configure a task at definition. The zero value is valid.
type Options struct {
	// Version identifies the definition. Empty derives one from the
	// definition itself (names, input and output types, resources, policies).
	Version string
	// Description is shown in GET /task and /docs.
	Description string
	// Resources the task needs on its node.
	Resources Resources
	// Retry policy; nil means DefaultRetryPolicy.
	Retry *RetryPolicy
	// Timeout bounds each attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxInterruptions bounds how often a run may be interrupted by the
	// platform (its node restarted, was lost or drained) before it fails.
	// Interruptions never spend the Retry policy, which counts the task's
	// own failures only. Zero means the dispatcher's default
	// (dispatch.Config.MaxInterruptions, 10 unless set); negative means
	// none: the first interruption fails the run.
	MaxInterruptions int
}

// DefaultTimeout bounds an attempt when Options.Timeout is zero.
const DefaultTimeout = time.Hour

// Definition is the untyped view of a task that the registry, the dispatcher
// and the HTTP layer share.
type Definition struct {
	Project     string
	Domain      string
	Name        string
	Version     string
	Description string
	Resources   Resources
	// Request is Resources parsed; checked at definition time.
	Request Request
	Retry   RetryPolicy
	Timeout time.Duration
	// MaxInterruptions is Options.MaxInterruptions: zero means the
	// dispatcher's default, negative none.
	MaxInterruptions int
	// InputType and OutputType are the Go types of the function, for schemas.
	InputType  reflect.Type
	OutputType reflect.Type

	invoke func(ctx context.Context, in json.RawMessage) (json.RawMessage, error)
}

// ID is "project/domain/name".
func (d *Definition) ID() string { return d.Project + "/" + d.Domain + "/" + d.Name }

// Definition returns d itself, so a *Definition can be registered directly.
func (d *Definition) Definition() *Definition { return d }

// Invoke decodes in (unknown fields refused), calls the function and encodes
// its output. Control errors (RetryAfter, Permanent) pass through unchanged.
func (d *Definition) Invoke(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
	return d.invoke(ctx, in)
}

// Task is a typed task: a Go function with its definition.
type Task[I, O any] struct {
	def *Definition
	fn  func(context.Context, I) (O, error)
}

// Definition returns the untyped definition.
func (t *Task[I, O]) Definition() *Definition { return t.def }

// Call runs the function directly, in process, with no run around it.
func (t *Task[I, O]) Call(ctx context.Context, in I) (O, error) { return t.fn(ctx, in) }

// Definer is anything that can be registered: *Task[I, O] and *Definition.
type Definer interface{ Definition() *Definition }

// ErrInvalidDefinition wraps every definition-time error.
var ErrInvalidDefinition = errors.New("invalid task definition")

// ValidName reports whether s is a lowercase DNS label (1 to 63 characters of
// a-z, 0-9 and '-', not starting or ending with '-'): the rule of task,
// environment and endpoint names, so that each can be part of a URL.
func ValidName(s string) bool { return dnslabel.Valid(s) }

// Define declares a typed task. Every error (a bad name, a malformed resource
// spec, a bad policy) is reported here, never at run time.
func Define[I, O any](project, domain, name string, fn func(context.Context, I) (O, error), opts *Options) (*Task[I, O], error) {
	if opts == nil {
		opts = &Options{}
	}
	for _, p := range [][2]string{{"project", project}, {"domain", domain}, {"name", name}} {
		if !ValidName(p[1]) {
			return nil, fmt.Errorf("%w: %s %q is not a lowercase DNS label", ErrInvalidDefinition, p[0], p[1])
		}
	}
	if fn == nil {
		return nil, fmt.Errorf("%w: %s/%s/%s has a nil function", ErrInvalidDefinition, project, domain, name)
	}
	req, err := opts.Resources.Parse()
	if err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %w", ErrInvalidDefinition, project, domain, name, err)
	}
	retry := DefaultRetryPolicy
	if opts.Retry != nil {
		retry = *opts.Retry
	}
	if err := retry.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s/%s/%s: %w", ErrInvalidDefinition, project, domain, name, err)
	}
	timeout := opts.Timeout
	if timeout < 0 {
		return nil, fmt.Errorf("%w: %s/%s/%s: negative timeout %s", ErrInvalidDefinition, project, domain, name, timeout)
	}
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	t := &Task[I, O]{fn: fn}
	t.def = &Definition{
		Project: project, Domain: domain, Name: name,
		Version:     opts.Version,
		Description: opts.Description,
		Resources:   opts.Resources,
		Request:     req,
		Retry:       retry,
		Timeout:     timeout,
		InputType:   reflect.TypeFor[I](),
		OutputType:  reflect.TypeFor[O](),
		invoke: func(ctx context.Context, raw json.RawMessage) (json.RawMessage, error) {
			var in I
			if len(bytes.TrimSpace(raw)) > 0 {
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&in); err != nil {
					return nil, Permanent(fmt.Errorf("decode inputs: %w", err))
				}
			}
			out, err := fn(ctx, in)
			if err != nil {
				return nil, err
			}
			b, err := json.Marshal(out)
			if err != nil {
				return nil, Permanent(fmt.Errorf("encode outputs: %w", err))
			}
			return b, nil
		},
	}
	t.def.MaxInterruptions = opts.MaxInterruptions
	if t.def.Version == "" {
		t.def.Version = deriveVersion(t.def)
	}
	return t, nil
}

// MustDefine is Define that panics on error, for package-level task vars.
func MustDefine[I, O any](project, domain, name string, fn func(context.Context, I) (O, error), opts *Options) *Task[I, O] {
	t, err := Define(project, domain, name, fn, opts)
	if err != nil {
		panic(err)
	}
	return t
}

// deriveVersion hashes everything that changes what a run of the task means.
func deriveVersion(d *Definition) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s\x00", d.ID(), typeSig(d.InputType), typeSig(d.OutputType), d.Timeout, d.Description)
	b, _ := json.Marshal(struct {
		R Resources
		P RetryPolicy
	}{d.Resources, d.Retry})
	h.Write(b)
	if d.MaxInterruptions != 0 {
		// Only when set, so that the versions derived before the setting
		// existed stay the same.
		fmt.Fprintf(h, "\x00interruptions=%d", d.MaxInterruptions)
	}
	return "v" + hex.EncodeToString(h.Sum(nil))[:12]
}

// typeSig spells a type with its fields and tags, so a changed struct gives a
// changed version even when its name stays.
func typeSig(t reflect.Type) string {
	if t.Kind() != reflect.Struct {
		return t.String()
	}
	var b bytes.Buffer
	b.WriteString(t.String() + "{")
	for i := range t.NumField() {
		f := t.Field(i)
		fmt.Fprintf(&b, "%s %s `%s`;", f.Name, f.Type, f.Tag)
	}
	b.WriteString("}")
	return b.String()
}

// ErrDuplicateTask is returned when a project/domain/name is registered twice.
var ErrDuplicateTask = errors.New("task already registered")

// Registry holds task definitions keyed by project/domain/name. It is safe for
// concurrent use.
type Registry struct {
	mu   sync.RWMutex
	defs map[string]*Definition
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{defs: map[string]*Definition{}} }

// Register adds tasks; a duplicate is an error and registers none of them.
func (r *Registry) Register(tasks ...Definer) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	for _, t := range tasks {
		d := t.Definition()
		if _, dup := r.defs[d.ID()]; dup || seen[d.ID()] {
			return fmt.Errorf("%w: %s", ErrDuplicateTask, d.ID())
		}
		seen[d.ID()] = true
	}
	for _, t := range tasks {
		d := t.Definition()
		r.defs[d.ID()] = d
	}
	return nil
}

// MustRegister is Register that panics on error.
func (r *Registry) MustRegister(tasks ...Definer) {
	if err := r.Register(tasks...); err != nil {
		panic(err)
	}
}

// Lookup finds a task by its three names.
func (r *Registry) Lookup(project, domain, name string) (*Definition, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	d, ok := r.defs[project+"/"+domain+"/"+name]
	return d, ok
}

// All returns every definition sorted by ID.
func (r *Registry) All() []*Definition {
	r.mu.RLock()
	out := make([]*Definition, 0, len(r.defs))
	for _, d := range r.defs {
		out = append(out, d)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out
}
