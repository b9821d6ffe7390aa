// Package scheduler places runs on nodes by resource fit. On the data path
// (request → auth → environment → dispatcher → scheduler → node agent →
// store → callbacks) it is the decision in the middle: the dispatcher's
// leader feeds it and acts on its answers. It is a pure, in-memory engine: it is fed node inventories (CPU, memory, GPUs and MIG
// partitions, health) and queued runs (a tasks.Request with GPU fallbacks,
// a priority, a project), and each Schedule call returns bindings of runs to
// nodes and concrete devices. It does no I/O and starts no goroutines; the
// dispatcher owns one Scheduler, serialises calls to it, and persists what
// it decides.
//
// The rules:
//
//   - Gang allocation: every GPU of a run comes from one node and is of one
//     type. A MIG partition is a device of its own.
//   - A run's GPU alternatives (tasks.Resources.GPU, then GPUFallbacks) are
//     tried in order; the first that fits wins.
//   - Among the nodes that fit, BinPack (the default) takes the fullest,
//     Spread the emptiest.
//   - The queue is ordered by priority (higher first), then Seq (FIFO).
//   - The first waiting run that fits nowhere reserves the node closest to
//     holding it; no other run is placed there, so a stream of 1-GPU runs
//     cannot starve an 8-GPU run, while small runs still fill other nodes.
//   - Per-project GPU quotas: a run that would take its project past the
//     quota waits with the reason "project quota of 8 GPUs reached".
//   - CPU-only runs go to CPU-only nodes when one fits.
//   - A node that turns unhealthy or is removed sends its runs back to the
//     queue, in their old places.
//
// Nodes are indexed per device kind by free-device count, so a decision
// looks at a handful of buckets instead of every node; queue positions are
// a binary search in the sorted queue. A waiting run holds its ID, project,
// priority, sequence and a pointer to its request, which the runs that ask
// the same share: about 240 bytes of heap a run with the dispatcher's
// bookkeeping, at a million waiting.
//
//	s, _ := scheduler.New(scheduler.Config{ProjectGPUQuota: map[string]int{"research": 8}})
//	s.UpsertNode(scheduler.Node{ID: "n1", MilliCPU: 64000, MemoryBytes: 512 << 30, Healthy: true,
//		Devices: []scheduler.Device{{Type: "H100", Index: 0, Healthy: true}, {Type: "H100", Index: 1, Healthy: true}}})
//	req, _ := tasks.Resources{GPU: "H100:2"}.Parse()
//	s.Enqueue(scheduler.Run{ID: "r1", Project: "research", Request: req})
//	for _, b := range s.Schedule() {
//		fmt.Println(b.RunID, b.NodeID, len(b.Devices)) // r1 n1 2
//	}
//
// Inventories come from package discovery (TASKGATE_NODE_GPUS, nvidia-smi,
// the host's CPU and memory), which imports this one. The scheduler must
// not import a store, net/http, os/exec or anything else that does I/O;
// `make lint` (depguard) holds it to that.
package scheduler
