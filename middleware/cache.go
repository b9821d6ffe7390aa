package middleware

import (
	"context"
	"crypto/sha256"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// CacheConfig configures NewCache. The zero value is usable.
type CacheConfig struct {
	// Size bounds the number of cached identities. Default 10000. The
	// cache is split in shards that each evict their least recently used
	// entry, so the bound is per shard: Size/16 each, rounded up.
	Size int
	// MaxTTL bounds how long an identity is cached, also when its Expiry
	// is later or unset. Default five minutes. It is how long a revoked
	// static token or key stays usable.
	MaxTTL time.Duration
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *CacheConfig) validate() error {
	switch {
	case c.Size < 0:
		return fmt.Errorf("middleware: CacheConfig.Size %d is negative", c.Size)
	case c.MaxTTL < 0:
		return fmt.Errorf("middleware: CacheConfig.MaxTTL %v is negative", c.MaxTTL)
	}
	if c.Size == 0 {
		c.Size = 10000
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = 5 * time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

const cacheShards = 16

// Cache remembers the identities an Authenticator verified, so a repeated
// credential costs a hash and a map lookup instead of a signature check.
// Entries are keyed by the SHA-256 of the credential (the raw credential is
// never stored) and live until the identity's Expiry or MaxTTL, whichever
// comes first. Refusals are not cached: a flood of bad tokens must not evict
// good ones.
//
// Cached identities are shared between requests: treat their Groups and
// Claims as read-only.
type Cache struct {
	next   Authenticator
	maxTTL time.Duration
	now    func() time.Time
	shards [cacheShards]cacheShard

	hits, misses atomic.Uint64
}

// CacheStats counts a Cache's lookups since it was made.
type CacheStats struct {
	// Hits counts the credentials answered from the cache.
	Hits uint64
	// Misses counts the credentials passed to the wrapped Authenticator:
	// new, expired, evicted, or refused before (refusals are not cached).
	Misses uint64
}

var _ Authenticator = (*Cache)(nil)

type cacheKey struct {
	src  Source
	hash [sha256.Size]byte
}

type cacheEntry struct {
	key        cacheKey
	id         Identity
	expires    time.Time
	prev, next *cacheEntry // LRU list, most recent at head
}

type cacheShard struct {
	mu         sync.Mutex
	m          map[cacheKey]*cacheEntry
	head, tail *cacheEntry
	capacity   int
}

// NewCache wraps auth with a bounded cache. It panics if cfg is invalid,
// naming the bad setting.
func NewCache(auth Authenticator, cfg CacheConfig) *Cache {
	if auth == nil {
		panic("middleware: NewCache: nil Authenticator")
	}
	if err := cfg.validate(); err != nil {
		panic(err.Error())
	}
	c := &Cache{next: auth, maxTTL: cfg.MaxTTL, now: cfg.Now}
	perShard := (cfg.Size + cacheShards - 1) / cacheShards
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]*cacheEntry)
		c.shards[i].capacity = perShard
	}
	return c
}

// stringBytes views s as a byte slice without copying. The result is only
// ever passed to sha256, which neither keeps nor modifies its input; copying
// a multi-kilobyte token on every request would cost more than hashing it.
func stringBytes(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

func keyOf(c Credentials) cacheKey {
	k := cacheKey{src: c.Source}
	if c.Secret == "" {
		k.hash = sha256.Sum256(stringBytes(c.Value))
		return k
	}
	// Hash the halves separately so "ab"+"c" and "a"+"bc" differ.
	var pair [2 * sha256.Size]byte
	kh, sh := sha256.Sum256(stringBytes(c.Value)), sha256.Sum256(stringBytes(c.Secret))
	copy(pair[:], kh[:])
	copy(pair[sha256.Size:], sh[:])
	k.hash = sha256.Sum256(pair[:])
	return k
}

// Authenticate returns the cached identity for c, or asks the wrapped
// Authenticator and caches what it accepts.
func (c *Cache) Authenticate(ctx context.Context, cred Credentials) (Identity, error) {
	key := keyOf(cred)
	s := &c.shards[key.hash[0]%cacheShards]
	now := c.now()
	if id, ok := s.get(key, now); ok {
		c.hits.Add(1)
		return id, nil
	}
	c.misses.Add(1)
	id, err := c.next.Authenticate(ctx, cred)
	if err != nil {
		return id, err
	}
	expires := now.Add(c.maxTTL)
	if !id.Expiry.IsZero() && id.Expiry.Before(expires) {
		expires = id.Expiry
	}
	if expires.After(now) {
		s.put(key, id, expires)
	}
	return id, nil
}

// Stats returns the lookups counted so far.
func (c *Cache) Stats() CacheStats {
	return CacheStats{Hits: c.hits.Load(), Misses: c.misses.Load()}
}

// Len returns the number of cached identities, expired ones included until
// they are looked up or evicted.
func (c *Cache) Len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

func (s *cacheShard) get(k cacheKey, now time.Time) (Identity, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[k]
	if !ok {
		return Identity{}, false
	}
	if !now.Before(e.expires) {
		s.remove(e)
		return Identity{}, false
	}
	s.moveToFront(e)
	return e.id, true
}

func (s *cacheShard) put(k cacheKey, id Identity, expires time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[k]; ok { // a concurrent miss got here first
		e.id, e.expires = id, expires
		s.moveToFront(e)
		return
	}
	for len(s.m) >= s.capacity && s.tail != nil {
		s.remove(s.tail)
	}
	e := &cacheEntry{key: k, id: id, expires: expires}
	s.m[k] = e
	s.pushFront(e)
}

func (s *cacheShard) remove(e *cacheEntry) {
	delete(s.m, e.key)
	s.unlink(e)
}

func (s *cacheShard) unlink(e *cacheEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *cacheShard) pushFront(e *cacheEntry) {
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}

func (s *cacheShard) moveToFront(e *cacheEntry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}
