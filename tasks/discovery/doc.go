// Package discovery finds what a node can offer runs: the GPUs declared in
// TASKGATE_NODE_GPUS (ParseDeclaredGPUs), those nvidia-smi reports with their
// MIG partitions (DetectGPUs, ParseNvidiaSMI), and the host's CPUs and
// memory (LocalNode). On the data path (request → auth → environment →
// dispatcher → scheduler → node agent → store → callbacks) it serves the
// node agent, which publishes the inventory for the leader's scheduler.
//
//	gpus, err := discovery.ParseDeclaredGPUs("H100:8")
//	if err != nil {
//		return err
//	}
//	if gpus == nil {
//		gpus, err = discovery.DetectGPUs(ctx, discovery.ExecCommand) // none installed: no GPUs
//	}
//	node := discovery.LocalNode("node-a", gpus) // a scheduler.Node
//
// It is where the I/O that the scheduler must not do (running programs,
// reading /proc) lives, as device detection lives with Nomad's client. It
// imports the scheduler for its types, never the other way round, and must
// not import the dispatcher, a store or any HTTP layer.
package discovery
