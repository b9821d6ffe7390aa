package scheduler

// The indexes keep every healthy node in buckets by a small integer level:
// per device pool, the number of free devices of that pool; per CPU index,
// the free whole cores. A decision for "4 H100" then looks only at the H100
// buckets 4, 5, 6… (bin-pack) or from the top down (spread) and stops at the
// first node that also has the CPU and memory, instead of scanning every
// node. Buckets are slices with swap-remove, so moving a node between levels
// is O(1) and the order inside a bucket, though arbitrary, depends only on
// the sequence of calls: the scheduler stays deterministic.

// slot is a node's membership of one levelIndex.
type slot struct {
	node *nodeState
	np   *nodePool // nil for a CPU slot
	// level is the bucket; pos the place in it, -1 when not indexed.
	level, pos int
}

type levelIndex struct {
	levels [][]*slot
}

func (x *levelIndex) insert(s *slot, level int) {
	for len(x.levels) <= level {
		x.levels = append(x.levels, nil)
	}
	s.level = level
	s.pos = len(x.levels[level])
	x.levels[level] = append(x.levels[level], s)
}

func (x *levelIndex) remove(s *slot) {
	if s.pos < 0 {
		return
	}
	l := x.levels[s.level]
	last := l[len(l)-1]
	l[s.pos] = last
	last.pos = s.pos
	l[len(l)-1] = nil
	x.levels[s.level] = l[:len(l)-1]
	s.pos = -1
}

// set moves s to level, inserting it when it is not indexed.
func (x *levelIndex) set(s *slot, level int) {
	if s.pos >= 0 {
		if s.level == level {
			return
		}
		x.remove(s)
	}
	x.insert(s, level)
}

// poolKey names a kind of allocatable device: a GPU type, and a MIG profile
// for partitions.
type poolKey struct {
	typ, mig string
}

func (k poolKey) String() string {
	if k.mig == "" {
		return k.typ
	}
	return k.typ + " MIG " + k.mig
}

// pool indexes the healthy nodes that have devices of one kind.
type pool struct {
	key poolKey
	idx levelIndex
	// totals[t] counts indexed nodes with t healthy devices of the pool, so
	// "no node has 8 H100" needs no scan.
	totals []int
}

func (p *pool) addTotal(t, delta int) {
	for len(p.totals) <= t {
		p.totals = append(p.totals, 0)
	}
	p.totals[t] += delta
}

func (p *pool) maxTotal() int {
	for t := len(p.totals) - 1; t > 0; t-- {
		if p.totals[t] > 0 {
			return t
		}
	}
	return 0
}

// nodePool is one node's devices of one pool.
type nodePool struct {
	slot
	pool *pool
	// free holds indexes into nodeState.devs of free healthy devices,
	// ascending, so allocation takes the lowest device indexes first.
	free  []int
	total int
}

// cpuLevels bounds the CPU buckets; nodes with more free cores share the top.
const cpuLevels = 512

func cpuLevel(milli int64) int {
	l := milli / 1000
	switch {
	case l < 0:
		return 0
	case l >= cpuLevels:
		return cpuLevels - 1
	default:
		return int(l)
	}
}
