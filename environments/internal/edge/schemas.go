package edge

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/negotiation"

	"github.com/taskgate/taskgate/tasks"
)

// DescribePhases makes every tasks.Phase in api's documents an enum of the
// phases, so generated clients get a union type rather than a string.
// Package tasks stays free of huma: the schema is an alias registered here.
func DescribePhases(api huma.API) {
	api.OpenAPI().Components.Schemas.RegisterTypeAlias(reflect.TypeFor[tasks.Phase](), reflect.TypeFor[phaseSchema]())
}

// phaseSchema stands for tasks.Phase in schemas.
type phaseSchema string

// Schema implements huma.SchemaProvider.
func (phaseSchema) Schema(huma.Registry) *huma.Schema {
	enum := make([]any, len(tasks.Phases))
	for i, p := range tasks.Phases {
		enum[i] = string(p)
	}
	return &huma.Schema{Type: huma.TypeString, Enum: enum}
}

// Media types an error body is negotiated between.
const (
	problemJSON = "application/problem+json"
	plainJSON   = "application/json"
)

// negotiateError sets an error's Content-Type from the request's Accept:
// application/problem+json when the client accepts it (or says nothing),
// else application/json, the same body under the type a client such as
// fal's asked for. huma has already set problem+json (ErrorModel's
// ContentTypeFilter) by the time a transformer runs, before the body is
// written.
func negotiateError(ctx huma.Context) {
	accept := ctx.Header("Accept")
	if accept == "" {
		return
	}
	if negotiation.SelectQValue(accept, []string{problemJSON, plainJSON}) == plainJSON {
		ctx.SetHeader("Content-Type", plainJSON)
	}
}
