package dispatch

import (
	"errors"
	"fmt"

	"github.com/taskgate/taskgate/internal/storable"
)

// ErrInvalidText: a text of a SubmitRequest is not valid UTF-8 without NUL
// (see TextError). Such text would be refused by PostgreSQL, failing the
// whole group commit with it, or kept and served back altered.
var ErrInvalidText = errors.New("dispatch: text is not valid UTF-8 without NUL")

// TextError names the text of a SubmitRequest that cannot be stored. It
// matches ErrInvalidText.
type TextError struct {
	// Field is "inputs", "webhook", "webhook_events", "idempotency_key" or
	// "caller".
	Field string
	// Where is the place within the inputs, as huma names places in a
	// body (".items[3].name"); "" for the other fields.
	Where string
}

func (e *TextError) Error() string {
	return fmt.Sprintf("dispatch: %s%s is not valid UTF-8 without NUL", e.Field, e.Where)
}

func (e *TextError) Unwrap() error { return ErrInvalidText }

// checkText refuses a request with text that cannot be stored as it is.
// The HTTP environments refuse such requests first, naming the parameter;
// this holds for every other caller of Submit.
func checkText(req *SubmitRequest, inputs []byte) error {
	id := req.Caller
	texts := [...]struct{ field, s string }{
		{"webhook", req.Webhook}, {"idempotency_key", req.IdempotencyKey},
		{"caller", id.Subject}, {"caller", id.Name}, {"caller", id.Email},
	}
	for _, t := range texts {
		if !storable.Text(t.s) {
			return &TextError{Field: t.field}
		}
	}
	for _, e := range req.WebhookEvents {
		if !storable.Text(e) {
			return &TextError{Field: "webhook_events"}
		}
	}
	for _, g := range id.Groups {
		if !storable.Text(g) {
			return &TextError{Field: "caller"}
		}
	}
	if where, ok := storable.JSON(inputs); !ok {
		return &TextError{Field: "inputs", Where: where}
	}
	return nil
}
