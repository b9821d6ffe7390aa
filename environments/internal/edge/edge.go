package edge

import (
	"mime"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/internal/storable"
)

// What a request must be before a handler reads or stores it: a JSON body
// in UTF-8, and text that can be stored as it is.

// errNotJSON is why a body is refused with 415.
const errNotJSON = "the body must be JSON in UTF-8: Content-Type application/json or application/*+json, " +
	"with no charset or charset=utf-8"

// isJSONType reports whether a Content-Type names JSON in UTF-8:
// application/json or application/*+json, with no charset or charset=utf-8.
// RFC 8259 makes UTF-8 the only encoding of JSON between systems, so any
// other charset would be parsed as UTF-8 and mangled.
func isJSONType(ct string) bool {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if mt != "application/json" && !(strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8") || strings.EqualFold(cs, "utf8")
}

// JSONBodies answers 415 to a request with a body whose Content-Type is not
// JSON in UTF-8 (isJSONType): every body the webhook environment takes is
// JSON, and an XML, form or UTF-16 body must not be read as JSON. A body
// without a Content-Type is taken as JSON, which is what such clients send
// (RFC 9110 lets the recipient assume a type); a browser's form or
// cross-site post always names its type, so it is refused. An empty body
// is never refused, whatever its type: there is nothing to parse.
func JSONBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody {
			ct := r.Header.Get("Content-Type")
			switch {
			case ct == "":
				r.Header.Set("Content-Type", "application/json")
			case !isJSONType(ct):
				problem.Write(w, r, http.StatusUnsupportedMediaType, errNotJSON)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// JSONOperations is JSONBodies for the huma operations of an app
// environment whose bodies are JSON only (a Body field); an operation that
// takes other types (RawBody, multipart) reads what it declares.
func JSONOperations(api huma.API) func(ctx huma.Context, next func(huma.Context)) {
	return func(ctx huma.Context, next func(huma.Context)) {
		if rb := ctx.Operation().RequestBody; rb != nil && jsonOnly(rb) {
			ct := ctx.Header("Content-Type")
			if ct != "" && ctx.Header("Content-Length") != "0" && !isJSONType(ct) {
				_ = huma.WriteErr(api, ctx, http.StatusUnsupportedMediaType, errNotJSON)
				return
			}
		}
		next(ctx)
	}
}

// jsonOnly reports whether a request body is documented as JSON only.
func jsonOnly(rb *huma.RequestBody) bool {
	if len(rb.Content) == 0 {
		return false
	}
	for ct := range rb.Content {
		if !isJSONType(ct) {
			return false
		}
	}
	return true
}

// TextProblem is the 422 of text that cannot be stored as it is, at
// location ("query.webhook", "header.Idempotency-Key", "body.message"). The
// value is not echoed: it is what the client got wrong, bytes and all.
func TextProblem(location string) error {
	return huma.Error422UnprocessableEntity("validation failed", TextDetail(location))
}

// TextDetail is TextProblem's detail, which a huma Resolver returns.
func TextDetail(location string) *huma.ErrorDetail {
	return &huma.ErrorDetail{
		Message:  "expected valid UTF-8 text without NUL (U+0000) or lone surrogates",
		Location: location,
	}
}

// CheckText refuses each of texts that cannot be stored as it is, naming
// location.
func CheckText(location string, texts ...string) error {
	for _, s := range texts {
		if !storable.Text(s) {
			return TextProblem(location)
		}
	}
	return nil
}

// CheckJSONText refuses a JSON body whose strings cannot be stored as they
// are (storable.JSON), naming the string under location ("body").
func CheckJSONText(location string, raw []byte) error {
	if where, ok := storable.JSON(raw); !ok {
		return TextProblem(location + where)
	}
	return nil
}
