package dispatch

// SubmitsQueuedForTest is how many submits wait for d's submit writer.
func SubmitsQueuedForTest(d *Dispatcher) int { return len(d.submits.q) }
