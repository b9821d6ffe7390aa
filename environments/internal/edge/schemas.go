package edge

import (
	"reflect"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/internal/problem"
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

// negotiateError sets an error's Content-Type from the request's Accept by
// problem.ContentTypeFor, the rule of every error writer, and says that
// it did in Vary. huma has already set problem+json (ErrorModel's
// ContentTypeFilter) by the time a transformer runs, before the body is
// written.
func negotiateError(ctx huma.Context) {
	ctx.AppendHeader("Vary", "Accept")
	if ct := problem.ContentTypeFor(ctx.Header("Accept")); ct != problem.ContentType {
		ctx.SetHeader("Content-Type", ct)
	}
}
