package apidocs

import (
	"bytes"
	"encoding/json"
	"net/http"
	"reflect"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/yaml"
	"github.com/go-chi/chi/v5"
)

// BuildVersion is the version of the main module as the Go toolchain
// stamped it into the binary (a tag, or a pseudo-version from VCS), and
// "dev" when it stamped none (go run, go test, -buildvcs=false).
func BuildVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// BearerScheme is the security scheme every environment's document
// declares: the Authorization header's bearer token (an OIDC JWT or a
// static token), which every environment's default extractors accept.
const BearerScheme = "bearer"

// Policy says what an environment's document declares beyond what each
// operation registered: which paths are public, and the errors its
// middleware (auth, limits) answers before any operation runs.
type Policy struct {
	// Public reports whether a path (as documented, "/health") is served
	// without credentials; its operations declare `security: []`.
	Public func(path string) bool
	// Secured are the statuses the auth middleware answers on a path
	// that needs credentials: 401, and 403 with a required group.
	Secured []int
	// Every are the statuses any operation may answer: 429 of the
	// rate and in-flight limits, 500.
	Every []int
	// Body are the statuses of an operation that takes a body: 413 past
	// the size limit.
	Body []int
	// JSONBody are those of an operation that takes JSON only: 415 for a
	// body of another type.
	JSONBody []int
}

// Finish completes an environment's document once every operation is
// registered: the bearer security scheme, each operation's `security`
// (none on public paths), the error responses of Policy, and each error
// response offered as application/json beside application/problem+json,
// the two types errors are negotiated between (see the edge package).
func Finish(api huma.API, p Policy) {
	oapi := api.OpenAPI()
	if oapi.Components.SecuritySchemes == nil {
		oapi.Components.SecuritySchemes = map[string]*huma.SecurityScheme{}
	}
	if oapi.Components.SecuritySchemes[BearerScheme] == nil {
		oapi.Components.SecuritySchemes[BearerScheme] = &huma.SecurityScheme{
			Type: "http", Scheme: "bearer", Description: "An OIDC/JWT or static token in `Authorization: Bearer …`.",
		}
	}
	errSchema := oapi.Components.Schemas.Schema(reflectErrorModel, true, "ErrorModel")
	for path, item := range oapi.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Options, item.Head, item.Patch, item.Trace} {
			if op == nil {
				continue
			}
			public := p.Public != nil && p.Public(path)
			switch {
			case public:
				op.Security = []map[string][]string{}
			case op.Security == nil:
				op.Security = []map[string][]string{{BearerScheme: {}}}
			}
			statuses := slices.Clone(p.Every)
			if !public {
				statuses = append(statuses, p.Secured...)
			}
			if op.RequestBody != nil {
				statuses = append(statuses, p.Body...)
				if jsonOnly(op.RequestBody) {
					statuses = append(statuses, p.JSONBody...)
				}
			}
			if op.Responses == nil {
				op.Responses = map[string]*huma.Response{}
			}
			for _, s := range statuses {
				if op.Responses[strconv.Itoa(s)] == nil {
					op.Responses[strconv.Itoa(s)] = &huma.Response{Description: http.StatusText(s),
						Content: map[string]*huma.MediaType{problemType: {Schema: errSchema}}}
				}
			}
			if len(statuses) > 0 || hasErrors(op) {
				// An explicit error list makes huma's catch-all "default" redundant.
				delete(op.Responses, "default")
			}
			for _, r := range op.Responses {
				if mt := r.Content[problemType]; mt != nil && r.Content[jsonType] == nil {
					r.Content[jsonType] = mt
				}
			}
		}
	}
}

const (
	problemType = "application/problem+json"
	jsonType    = "application/json"
)

var reflectErrorModel = reflect.TypeFor[huma.ErrorModel]()

func jsonOnly(rb *huma.RequestBody) bool {
	for ct := range rb.Content {
		if ct != jsonType && !strings.HasSuffix(ct, "+json") {
			return false
		}
	}
	return len(rb.Content) > 0
}

func hasErrors(op *huma.Operation) bool {
	for code := range op.Responses {
		if n, err := strconv.Atoi(code); err == nil && n >= 400 {
			return true
		}
	}
	return false
}

// serveDocuments serves the OpenAPI documents of api on r: 3.1 as huma
// writes it, and 3.0 as huma downgrades it, completed by downgrade30. Each
// is rendered once, at its first request, when every operation is in.
func serveDocuments(r chi.Router, api huma.API) {
	type doc struct {
		once sync.Once
		b    []byte
	}
	render := func(ct string, fn func() ([]byte, error)) http.HandlerFunc {
		d := &doc{}
		return func(w http.ResponseWriter, _ *http.Request) {
			d.once.Do(func() {
				b, err := fn()
				if err != nil {
					panic(err) // the document of a registered API always marshals
				}
				d.b = b
			})
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write(d.b)
		}
	}
	json31 := func() ([]byte, error) { return json.Marshal(api.OpenAPI()) }
	json30 := func() ([]byte, error) { return Downgrade(api.OpenAPI()) }
	r.Get("/openapi.json", render("application/openapi+json", json31))
	r.Get("/openapi-3.0.json", render("application/openapi+json", json30))
	r.Get("/openapi.yaml", render("application/openapi+yaml", func() ([]byte, error) { return api.OpenAPI().YAML() }))
	r.Get("/openapi-3.0.yaml", render("application/openapi+yaml", func() ([]byte, error) { return toYAML(json30()) }))
}

func toYAML(b []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := yaml.Convert(&buf, bytes.NewReader(b)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Downgrade is huma's 3.0 downgrade of o, completed where huma leaves
// keywords 3.0 does not have: contentMediaType (of a binary body),
// const (as a one-value enum), examples (as its first example), and
// $schema.
func Downgrade(o *huma.OpenAPI) ([]byte, error) {
	b, err := o.Downgrade()
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	downgrade30(v, false)
	return json.Marshal(v)
}

// downgrade30 walks a downgraded document; inSchema is true within a
// schema, where the keywords below mean what they say (elsewhere "const"
// could be a property's name).
func downgrade30(v any, inSchema bool) {
	switch v := v.(type) {
	case map[string]any:
		if inSchema {
			delete(v, "contentMediaType")
			delete(v, "$schema")
			if c, ok := v["const"]; ok {
				delete(v, "const")
				v["enum"] = []any{c}
			}
			if ex, ok := v["examples"].([]any); ok {
				delete(v, "examples")
				if _, has := v["example"]; !has && len(ex) > 0 {
					v["example"] = ex[0]
				}
			}
		}
		for k, child := range v {
			switch k {
			case "schema", "items", "additionalProperties", "not":
				downgrade30(child, true)
			case "properties", "schemas", "patternProperties":
				if m, ok := child.(map[string]any); ok {
					for _, s := range m {
						downgrade30(s, true)
					}
				}
			case "allOf", "anyOf", "oneOf":
				if l, ok := child.([]any); ok {
					for _, s := range l {
						downgrade30(s, true)
					}
				}
			case "example", "default", "enum", "const":
				// Values, not schemas (below a schema), and left alone.
				if !inSchema {
					downgrade30(child, false)
				}
			default:
				downgrade30(child, false)
			}
		}
	case []any:
		for _, c := range v {
			downgrade30(c, inSchema)
		}
	}
}
