package dispatch

// KillAgentForTest stops d as SIGKILL would, as far as the store can tell:
// no more heartbeats or writes, and no deregistration.
func KillAgentForTest(d *Dispatcher) {
	d.stopBG()
	if d.agent != nil {
		d.agent.cancelAll(errNodeLost)
	}
}
