package peerbench

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	_ "modernc.org/sqlite" // the SQLite driver taskgate's store uses too

	"github.com/taskgate/taskgate/tasks/store/postgres/pgtest"
)

// noopArgs is the River job both benchmarks insert and work.
type noopArgs struct{}

func (noopArgs) Kind() string { return "noop" }

type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

func (noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

// riverSystem is a River client on a migrated database. It is not started
// until work: inserts go through the client as they would in an API
// process whose workers run elsewhere.
type riverSystem[TTx any] struct {
	client *river.Client[TTx]
}

func (s *riverSystem[TTx]) insert(ctx context.Context) error {
	// Insert opens and commits a transaction of its own per job.
	_, err := s.client.Insert(ctx, noopArgs{}, nil)
	return err
}

func (s *riverSystem[TTx]) fill(ctx context.Context, n int) error {
	const batch = 1000
	params := make([]river.InsertManyParams, batch)
	for i := range params {
		params[i] = river.InsertManyParams{Args: noopArgs{}}
	}
	for done := 0; done < n; done += batch {
		if _, err := s.client.InsertManyFast(ctx, params[:min(batch, n-done)]); err != nil {
			return err
		}
	}
	return nil
}

func (s *riverSystem[TTx]) work(ctx context.Context, n int) error {
	// Completion events are sent once the completer has recorded the jobs;
	// a channel that holds them all drops none.
	events, cancel := s.client.SubscribeConfig(&river.SubscribeConfig{ChanSize: n, Kinds: []river.EventKind{river.EventKindJobCompleted}})
	defer cancel()
	if err := s.client.Start(ctx); err != nil {
		return err
	}
	defer func() { _ = s.client.Stop(context.Background()) }()
	for completed := 0; completed < n; completed++ {
		select {
		case <-events:
		case <-ctx.Done():
			return fmt.Errorf("river completed %d of %d jobs: %w", completed, n, ctx.Err())
		}
	}
	return nil
}

// newRiver migrates River's tables up through driver and returns a client
// on them with riverWorkers workers on the default queue.
//
// FetchCooldown is River's minimum, 1 ms: a producer fetches at most once
// per cooldown and at most as many jobs as it has free workers, so the
// default 100 ms caps a queue of 100 workers at 1,000 jobs/s whatever the
// database does. The minimum is what River offers a user who wants
// throughput; the rest is River's defaults.
func newRiver[TTx any](b *testing.B, driver riverdriver.Driver[TTx], schema string) system {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Schema: schema, Logger: logger})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		b.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, noopWorker{})
	client, err := river.NewClient(driver, &river.Config{
		FetchCooldown: river.FetchCooldownMin,
		Logger:        logger,
		Schema:        schema,
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: riverWorkers}},
		Workers:       workers,
	})
	if err != nil {
		b.Fatal(err)
	}
	return &riverSystem[TTx]{client: client}
}

// riverSQLite opens River on a fresh SQLite file in WAL mode with
// synchronous=FULL (taskgate's settings) and one connection, as the
// riversqlite driver advises to avoid SQLITE_BUSY.
func riverSQLite(b *testing.B) system {
	dsn := "file:" + filepath.Join(b.TempDir(), "river.db") +
		"?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		b.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	b.Cleanup(func() { _ = db.Close() })
	return newRiver(b, riversqlite.New(db), "")
}

// riverPostgres opens River in a fresh schema of the test database, with
// a pool of maxConns connections.
func riverPostgres(b *testing.B) system {
	ctx := context.Background()
	cfg := pgtest.Config(b, "river", "the peer benchmarks")
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		b.Fatal(err)
	}
	pc.MaxConns = maxConns
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{cfg.Schema}.Sanitize()); err != nil {
		b.Fatal(err)
	}
	return newRiver(b, riverpgxv5.New(pool), cfg.Schema)
}

// postgresURL is the test database's URL, empty when unset.
func postgresURL() string { return os.Getenv(pgtest.URLVar) }
