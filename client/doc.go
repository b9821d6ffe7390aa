// Package client calls a taskgate service from Go: the prebuilt webhook
// environment's routes (run-task, runs, events, nodes, queue, /me) and the
// fal-style queue of app environments.
//
// Typed calls take the task's definition, so the compiler checks the
// inputs and the outputs come back typed:
//
//	c, err := client.New("http://127.0.0.1:8080", &client.Options{
//		Credentials: client.BearerToken(os.Getenv("TASKGATE_TOKEN")),
//	})
//	if err != nil {
//		return err
//	}
//	out, err := client.Run(ctx, c, demo.Echo, demo.EchoInput{Message: "hi"})
//	var runErr *client.RunError // the run failed, was aborted or timed out
//	var apiErr *client.Error    // the API refused: status, detail, field errors
//	switch {
//	case errors.As(err, &runErr):
//		log.Printf("%s ended %s: %s", runErr.Run.Name, runErr.Run.Phase, runErr.Run.Error)
//	case errors.As(err, &apiErr):
//		log.Printf("%d %s (request %s)", apiErr.Status, apiErr.Detail, apiErr.RequestID)
//	}
//
// Run submits, waits and decodes; Start, Client.Wait and Outputs are its
// steps. Client.Wait follows the run's event stream (Client.Events) and
// falls back to polling where no stream gets through. Client.List iterates
// over the caller's runs across pages.
//
// Credentials are a BearerToken (a static token, an OIDC access token),
// OAuth2 (any oauth2.TokenSource, renewed as it expires) or a KeySecret
// pair (Modal-Key and Modal-Secret). Requests are retried after network
// errors, 429 and 503 with capped exponential backoff that honours
// Retry-After (see RetryPolicy); each submit carries an Idempotency-Key
// generated once per call, so a retried submit never starts a second run.
//
// Client.Logs iterates over a run's log lines (its logger's and its
// subprocesses' stdout and stderr), and with Follow keeps yielding them
// until the run ends, resuming a broken stream like Client.Events:
//
//	for line, err := range c.Logs(ctx, name, &client.LogsOptions{Follow: true}) {
//		if err != nil {
//			return err
//		}
//		fmt.Printf("%s %s\n", line.Stream, line.Message)
//	}
//
// Every call follows one pattern (GET a path, decode typed JSON, a
// problem+json as an *Error), so a route the API gains becomes one more
// method.
//
// It stands in front of the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks): it makes the
// request and reads back what the later steps recorded. Of taskgate it
// links only tasks (and middleware/identity through it), never
// environments, the dispatcher, a store, framework, huma or chi, so that a
// program that calls taskgate links none of the server
// (TestClientDoesNotLinkTheServer).
package client
