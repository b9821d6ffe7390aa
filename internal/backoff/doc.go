// Package backoff paces and reports an operation that keeps failing, such
// as a loop's call to a store whose disk is full. Between tries it waits a
// capped exponential time with jitter, so a loop never spins on an error;
// and it logs when the state changes, not on each try: the first error,
// then at most once per interval "still failing" with the count of errors
// since the first, then "recovered" with that count.
//
//	fails := backoff.New(backoff.Config{Logger: log, Msg: "record bindings"})
//	for {
//		if err := commit(ctx); err != nil {
//			backoff.Sleep(ctx, fails.Fail(ctx, err)) // logs the first error only
//			continue
//		}
//		fails.OK(ctx) // logs the recovery, once
//	}
//
// The exponential wait is a few lines here rather than a library's: what
// the loops need is the logging by state, which no backoff library does,
// and the wait must be readable by a periodic loop (Waiting) that skips its
// turns instead of sleeping.
//
// It stands beside the data path (request → auth → environment → dispatcher
// → scheduler → node agent → store → callbacks), inside the long-lived loops
// that keep it moving: the dispatcher's leader and agents, the callback
// worker, PostgreSQL's listener. It imports only the standard library and
// must not import any taskgate package: tasks/ imports it.
package backoff
