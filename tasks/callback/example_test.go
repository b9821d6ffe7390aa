package callback_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/taskgate/taskgate/tasks/callback"
)

// The webhook_events_filter of a run-task request, and the body its
// completion callback carries.
func ExampleParseEvents() {
	events, err := callback.ParseEvents([]string{"start,completed"})
	if err != nil {
		panic(err)
	}
	fmt.Println(events.Names())

	none, _ := callback.ParseEvents(nil)
	fmt.Println(none.Names())

	_, err = callback.ParseEvents([]string{"output"})
	fmt.Println(err)
	// Output:
	// [start completed]
	// [completed]
	// callback: unknown webhook event "output" (want "start" or "completed")
}

func ExampleEncodePayload() {
	at := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	run := json.RawMessage(`{"name":"r-1","phase":"succeeded"}`)
	body, _ := callback.EncodePayload(callback.PayloadType("completed"), at, run)
	fmt.Println(string(body))
	// Output:
	// {"type":"run.completed","timestamp":"2026-11-22T12:00:00Z","data":{"name":"r-1","phase":"succeeded"}}
}

func ExampleValidateURL() {
	for _, u := range []string{
		"https://example.com/hooks/taskgate",
		"https://user:pw@example.com/hooks",
		"file:///etc/passwd",
	} {
		fmt.Println(callback.ValidateURL(u))
	}
	// Output:
	// <nil>
	// callback: invalid webhook URL: user information is not allowed
	// callback: invalid webhook URL: scheme must be http or https
}
