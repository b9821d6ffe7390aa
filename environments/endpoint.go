package environments

import (
	"context"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/tasks"
)

// EndpointOptions tune one function endpoint. The zero value is a good
// default.
type EndpointOptions struct {
	// Method is the HTTP method. Default: POST when the input has a Body
	// field, else GET.
	Method string
	// Path of the endpoint within the environment. Default: "/<name>".
	Path string
	// Summary, Description and Tags document the operation; Summary
	// defaults to the name.
	Summary     string
	Description string
	Tags        []string
	// DefaultStatus of a successful response; 0 leaves huma's choice (200,
	// or 204 for an output without a body).
	DefaultStatus int
	// MaxBodyBytes caps the JSON body, which huma reads whole into memory
	// to validate it (413 beyond). Default 1 MiB; the environment's
	// Limits.MaxBodyBytes applies on top.
	MaxBodyBytes int64
}

var endpointMethods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// Endpoint turns a typed function into an operation of env: Modal's
// @fastapi_endpoint. The input struct declares parameters the huma way
// (`query:"x"`, `path:"id"`, `header:"X-Y"`, a Body field for the JSON
// body), with validation tags (`minimum:"0"`, `maxLength:"80"`,
// `required:"true"`); bad input is answered with 422 naming the field. The
// operation, its parameters and schemas appear in the environment's /docs
// under the operation ID name.
//
//	type SquareInput struct {
//		X int `query:"x" required:"true" doc:"the number to square"`
//	}
//	type SquareOutput struct {
//		Body struct{ Square int `json:"square"` }
//	}
//	environments.Endpoint(env, "square", func(ctx context.Context, in *SquareInput) (*SquareOutput, error) {
//		out := &SquareOutput{}
//		out.Body.Square = in.X * in.X
//		return out, nil
//	}, nil) // GET /square?x=3
//
// Register endpoints before the App starts: they are added at Build. Bad
// static configuration panics here, naming the setting: an invalid name
// (not a lowercase DNS label), a nil function, an unknown method, a path
// not starting with "/", or a name used twice. Problems huma finds in the
// types make Build fail.
func Endpoint[I, O any](env *AppEnvironment, name string, fn func(ctx context.Context, in *I) (*O, error), opts *EndpointOptions) {
	if opts == nil {
		opts = &EndpointOptions{}
	}
	if !tasks.ValidName(name) {
		panic(fmt.Sprintf("environments.Endpoint: name %q is not a lowercase DNS label", name))
	}
	if fn == nil {
		panic(fmt.Sprintf("environments.Endpoint %s: nil function", name))
	}
	method := strings.ToUpper(opts.Method)
	if method == "" {
		method = http.MethodGet
		if hasBody(reflect.TypeFor[I]()) {
			method = http.MethodPost
		}
	}
	if !slices.Contains(endpointMethods, method) {
		panic(fmt.Sprintf("environments.Endpoint %s: Method %q is not one of %v", name, opts.Method, endpointMethods))
	}
	path := opts.Path
	if path == "" {
		path = "/" + name
	}
	if !strings.HasPrefix(path, "/") {
		panic(fmt.Sprintf("environments.Endpoint %s: Path %q must start with /", name, path))
	}
	summary := opts.Summary
	if summary == "" {
		summary = name
	}
	op := huma.Operation{
		OperationID:   name,
		Method:        method,
		Path:          path,
		Summary:       summary,
		Description:   opts.Description,
		Tags:          slices.Clone(opts.Tags),
		DefaultStatus: opts.DefaultStatus,
		MaxBodyBytes:  opts.MaxBodyBytes,
	}
	env.addEndpoint(endpointReg{name: name, register: func(api huma.API) {
		huma.Register(api, op, fn)
	}})
}

// hasBody reports whether t, a huma input type, carries a request body.
func hasBody(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return false
	}
	_, body := t.FieldByName("Body")
	_, raw := t.FieldByName("RawBody")
	return body || raw
}
