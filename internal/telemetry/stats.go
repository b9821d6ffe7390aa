package telemetry

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks/store"
)

// The pool metrics are one set for both stores, rather than
// collectors.NewDBStatsCollector's go_sql_* for SQLite beside other names
// for pgxpool, so that one query watches either store.
var (
	descPoolMax = prometheus.NewDesc("taskgate_store_pool_max_connections",
		"Most connections a store pool opens.", []string{"pool"}, nil)
	descPoolOpen = prometheus.NewDesc("taskgate_store_pool_open_connections",
		"Connections a store pool holds open, in use or idle.", []string{"pool"}, nil)
	descPoolInUse = prometheus.NewDesc("taskgate_store_pool_in_use_connections",
		"Connections of a store pool in use.", []string{"pool"}, nil)
	descPoolIdle = prometheus.NewDesc("taskgate_store_pool_idle_connections",
		"Open connections of a store pool no one uses.", []string{"pool"}, nil)
	descPoolWaits = prometheus.NewDesc("taskgate_store_pool_waits_total",
		"Connections callers waited for, the pool having none free.", []string{"pool"}, nil)
	descPoolWait = prometheus.NewDesc("taskgate_store_pool_wait_seconds_total",
		"Time callers waited for a connection of a store pool.", []string{"pool"}, nil)

	descCacheHits = prometheus.NewDesc("taskgate_identity_cache_hits_total",
		"Credentials answered from the cache of verified identities.", nil, nil)
	descCacheMisses = prometheus.NewDesc("taskgate_identity_cache_misses_total",
		"Credentials the identity cache passed on to be verified (new, expired, evicted or refused).", nil, nil)
)

// poolCollector reads a store's connection pools at each scrape.
type poolCollector struct{ s store.PoolReporter }

// RegisterPools registers the connection pool gauges and counters of s
// on reg, unless reg has them already.
func RegisterPools(reg prometheus.Registerer, s store.PoolReporter) error {
	_, err := register(reg, &poolCollector{s: s})
	return err
}

// Describe sends every description.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPoolMax, descPoolOpen, descPoolInUse, descPoolIdle, descPoolWaits, descPoolWait} {
		ch <- d
	}
}

// Collect reads the pools: memory only, it never waits for a connection.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.s.PoolStats() {
		ch <- prometheus.MustNewConstMetric(descPoolMax, prometheus.GaugeValue, float64(p.MaxOpen), p.Name)
		ch <- prometheus.MustNewConstMetric(descPoolOpen, prometheus.GaugeValue, float64(p.Open), p.Name)
		ch <- prometheus.MustNewConstMetric(descPoolInUse, prometheus.GaugeValue, float64(p.InUse), p.Name)
		ch <- prometheus.MustNewConstMetric(descPoolIdle, prometheus.GaugeValue, float64(p.Idle), p.Name)
		ch <- prometheus.MustNewConstMetric(descPoolWaits, prometheus.CounterValue, float64(p.WaitCount), p.Name)
		ch <- prometheus.MustNewConstMetric(descPoolWait, prometheus.CounterValue, p.WaitDuration.Seconds(), p.Name)
	}
}

// IdentityCache is an Authenticator that counts its lookups;
// *middleware.Cache is one.
type IdentityCache interface {
	Stats() middleware.CacheStats
}

var _ IdentityCache = (*middleware.Cache)(nil)

// cacheCollector reads an identity cache's counters at each scrape.
type cacheCollector struct{ c IdentityCache }

// RegisterIdentityCache registers the hit and miss counters of c on reg,
// unless reg has them already.
func RegisterIdentityCache(reg prometheus.Registerer, c IdentityCache) error {
	_, err := register(reg, &cacheCollector{c: c})
	return err
}

// Describe sends every description.
func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descCacheHits
	ch <- descCacheMisses
}

// Collect reads the counters.
func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.c.Stats()
	ch <- prometheus.MustNewConstMetric(descCacheHits, prometheus.CounterValue, float64(st.Hits))
	ch <- prometheus.MustNewConstMetric(descCacheMisses, prometheus.CounterValue, float64(st.Misses))
}
