package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrate applies the migrations in fsys not yet applied, in version order,
// each in its own transaction with its version recorded. Files are named
// NNNN_description.sql; NNNN is the version. It returns the versions it
// applied.
func Migrate(ctx context.Context, db DB, d Dialect, fsys fs.FS) ([]int, error) {
	type migration struct {
		version int
		name    string
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		v, err := strconv.Atoi(strings.SplitN(path.Base(n), "_", 2)[0])
		if err != nil {
			return nil, fmt.Errorf("migration %s: name must start with a version number", n)
		}
		ms = append(ms, migration{v, n})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", ms[i-1].name, ms[i].name, ms[i].version)
		}
	}
	// The table is created under the migration lock too: processes that
	// start together on an empty PostgreSQL database would otherwise race
	// on CREATE TABLE IF NOT EXISTS and fail on the catalog's unique index.
	if err := func() error {
		tx, err := db.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
		if d.MigrationLock != "" {
			if _, err := tx.Exec(ctx, d.MigrationLock); err != nil {
				return fmt.Errorf("migration lock: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
			return err
		}
		return tx.Commit(ctx)
	}(); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	var applied []int
	for _, m := range ms {
		body, err := fs.ReadFile(fsys, m.name)
		if err != nil {
			return applied, err
		}
		done, err := func() (bool, error) {
			tx, err := db.Begin(ctx)
			if err != nil {
				return false, err
			}
			defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
			if d.MigrationLock != "" {
				if _, err := tx.Exec(ctx, d.MigrationLock); err != nil {
					return false, fmt.Errorf("migration lock: %w", err)
				}
			}
			rows, err := tx.Query(ctx, `SELECT 1 FROM schema_migrations WHERE version = $1`, m.version)
			if err != nil {
				return false, err
			}
			exists := rows.Next()
			rows.Close()
			if exists {
				return false, nil
			}
			if _, err := tx.Exec(ctx, string(body)); err != nil {
				return false, fmt.Errorf("migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.version, time.Now().UnixNano()); err != nil {
				return false, err
			}
			return true, tx.Commit(ctx)
		}()
		if err != nil {
			return applied, err
		}
		if done {
			applied = append(applied, m.version)
		}
	}
	return applied, nil
}
