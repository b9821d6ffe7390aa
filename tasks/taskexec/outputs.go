package taskexec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/tasks"
)

// maxOutputsBytes bounds the outputs file a program may write. The
// dispatcher's MaxOutputBytes (1 MiB unless raised) then applies to the
// outputs it stores; this only keeps a runaway program from filling memory.
const maxOutputsBytes = 16 << 20

// outputs is the JSON Schema of a command task's outputs: the one that
// GET /task shows as output_schema, generated the same way from O.
type outputs struct {
	reg    huma.Registry
	schema *huma.Schema
	// optional is set when O has no fields: a program that writes no
	// outputs file then succeeds with {}.
	optional bool
}

func newOutputs[O any]() *outputs {
	t := reflect.TypeFor[O]()
	reg := huma.NewMapRegistry("#/components/schemas/", huma.DefaultSchemaNamer)
	s := reg.Schema(t, true, "Outputs")
	if s.Ref != "" {
		s = reg.SchemaFromRef(s.Ref)
	}
	return &outputs{reg: reg, schema: s, optional: t.Kind() == reflect.Struct && t.NumField() == 0}
}

// readOutputs reads the outputs file the program wrote at path into O:
// valid JSON, matching O's schema, with no field O lacks. A program that
// exited 0 and broke this contract would break it again, so every error
// here is permanent.
func readOutputs[O any](path string, s *outputs) (O, error) {
	var out O
	fail := func(format string, args ...any) (O, error) {
		return out, tasks.Permanent(fmt.Errorf("outputs file %s ($%s): %s", path, EnvOutputs, fmt.Sprintf(format, args...)))
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		if s.optional {
			return out, nil
		}
		return fail("missing: the program exited 0 without writing its outputs")
	}
	if err != nil {
		return fail("%v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxOutputsBytes+1))
	switch {
	case err != nil:
		return fail("%v", err)
	case len(b) > maxOutputsBytes:
		return fail("larger than %d MiB", maxOutputsBytes>>20)
	case len(bytes.TrimSpace(b)) == 0:
		return fail("empty: expected a JSON value")
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fail("not valid JSON: %v", err)
	}
	res := &huma.ValidateResult{}
	huma.Validate(s.reg, s.schema, huma.NewPathBuffer([]byte("outputs"), len("outputs")), huma.ModeReadFromServer, v, res)
	if len(res.Errors) > 0 {
		msgs := make([]string, len(res.Errors))
		for i, e := range res.Errors {
			msgs[i] = e.Error()
			if d := (*huma.ErrorDetail)(nil); errors.As(e, &d) {
				msgs[i] = d.Location + ": " + d.Message
			}
		}
		return fail("does not match the output schema: %s", strings.Join(msgs, "; "))
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return fail("does not decode into the outputs: %v", err)
	}
	return out, nil
}
