package edge

import (
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// JSONProblems is an operation middleware that serves problem bodies as
// application/json to a caller whose Accept names neither
// application/problem+json nor a wildcard: fal's client asks for
// application/json and reads an error's body only when the answer says
// application/json (fal-js libs/client/src/response.ts,
// defaultResponseHandler). The body is the same problem object.
func JSONProblems(ctx huma.Context, next func(huma.Context)) {
	if acceptsProblem(ctx.Header("Accept")) {
		next(ctx)
		return
	}
	next(jsonProblemContext{ctx})
}

func acceptsProblem(accept string) bool {
	if accept == "" {
		return true
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, _ := strings.Cut(part, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/problem+json", "application/*", "*/*":
			return true
		}
	}
	return false
}

// jsonProblemContext rewrites the problem+json content type as it is set.
// It embeds the context under another name: huma.Context has a method
// called Context.
type jsonProblemContext struct{ humaContext }

type humaContext = huma.Context

func (c jsonProblemContext) SetHeader(name, value string) {
	if strings.EqualFold(name, "Content-Type") {
		if rest, ok := strings.CutPrefix(value, "application/problem+json"); ok {
			value = "application/json" + rest
		}
	}
	c.humaContext.SetHeader(name, value)
}

// Unwrap lets adapters (humachi.Unwrap) reach the request underneath.
func (c jsonProblemContext) Unwrap() huma.Context { return c.humaContext }
