package store

import "time"

// PoolStat is one database connection pool's state, as database/sql's
// DBStats and pgxpool's Stat report it. The store packages give it as
// plain values so that they need no metrics library; framework's
// telemetry turns it into gauges and counters at each scrape.
type PoolStat struct {
	// Name tells the pools of one store apart: SQLite's "writer" (one
	// connection, every write waits its turn there) and "reader";
	// PostgreSQL's one "main" pool.
	Name string
	// MaxOpen is the most connections the pool opens.
	MaxOpen int
	// Open counts the connections open now (in use, idle, and for
	// PostgreSQL those being established).
	Open int
	// InUse counts the connections a caller holds now.
	InUse int
	// Idle counts the open connections no one holds.
	Idle int
	// WaitCount counts the connections callers had to wait for, since
	// the store opened.
	WaitCount int64
	// WaitDuration is the time those callers waited, in total.
	WaitDuration time.Duration
}

// PoolReporter is a Store with connection pools: the SQLite and
// PostgreSQL stores are. Ask it with a type assertion.
type PoolReporter interface {
	PoolStats() []PoolStat
}
