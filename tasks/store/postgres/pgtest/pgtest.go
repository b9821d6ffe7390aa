// Package pgtest gives tests a PostgreSQL schema of their own: the tests of
// every package that run against PostgreSQL (the store, the dispatcher, the
// callback worker, the environments, the metrics) share it instead of each
// writing the same set-up.
//
// Place on the data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks): beside the store, for tests
// only; non-test code must not import it. It imports the postgres store's
// config type, pgx and testing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/taskgate/taskgate/tasks/store/postgres"
)

// URLVar names the variable that holds the PostgreSQL URL of the tests.
const URLVar = "TASKGATE_TEST_POSTGRES_URL"

// Config skips t when TASKGATE_TEST_POSTGRES_URL is unset, saying what
// needs it (what, e.g. "the PostgreSQL store tests"); else it returns a
// store config on a fresh schema named prefix_<random>, dropped when t
// ends, after whatever t opened on it later is closed (cleanups run last
// registered first). MaxConns is left for the caller to set.
func Config(t testing.TB, prefix, what string) postgres.Config {
	t.Helper()
	url := os.Getenv(URLVar)
	if url == "" {
		t.Skip(URLVar + " is unset; set it to a PostgreSQL URL to run " + what)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := prefix + "_" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		if conn, err := pgx.Connect(ctx, url); err == nil {
			_, _ = conn.Exec(ctx, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`)
			_ = conn.Close(ctx)
		}
	})
	return postgres.Config{URL: url, Schema: schema}
}

// Open is Config, then a store opened on it with maxConns connections,
// closed when t ends.
func Open(t testing.TB, prefix, what string, maxConns int32) *postgres.Store {
	t.Helper()
	cfg := Config(t, prefix, what)
	cfg.MaxConns = maxConns
	s, err := postgres.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("pgtest: open %s: %v", cfg.Schema, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
