package sqlite

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestToPositional(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, out  string
		order    []int
		identity bool
	}{
		{in: `SELECT 1`, out: `SELECT 1`, identity: true},
		{in: `INSERT INTO t VALUES ($1, $2), ($3, $4)`, out: `INSERT INTO t VALUES (?, ?), (?, ?)`, order: []int{0, 1, 2, 3}, identity: true},
		// A number used twice binds its argument twice.
		{in: `UPDATE runs SET phase = $1, n = (CASE WHEN phase = $1 THEN 0 ELSE 1 END) WHERE name = $2`,
			out: `UPDATE runs SET phase = ?, n = (CASE WHEN phase = ? THEN 0 ELSE 1 END) WHERE name = ?`, order: []int{0, 0, 1}},
		{in: `SELECT $2, $1`, out: `SELECT ?, ?`, order: []int{1, 0}},
		// Literals, quoted identifiers and comments keep their dollars.
		{in: `SELECT '$1 it''s', "a$2", $1 -- $9` + "\n" + `/* $3 */ FROM t`, out: `SELECT '$1 it''s', "a$2", ? -- $9` + "\n" + `/* $3 */ FROM t`, order: []int{0}, identity: true},
		{in: `SELECT $10, $11`, out: `SELECT ?, ?`, order: []int{9, 10}},
	} {
		p, err := toPositional(tc.in)
		require.NoError(t, err, tc.in)
		require.Equal(t, tc.out, p.query, tc.in)
		require.Equal(t, tc.order, p.order, tc.in)
		require.Equal(t, tc.identity, p.identity, tc.in)
	}
	for _, bad := range []string{`SELECT $`, `SELECT $0`, `SELECT $a`, `SELECT ?`, `SELECT :name`, `SELECT 'open`, `SELECT /* open`, `SELECT $99999999999`} {
		_, err := toPositional(bad)
		require.Error(t, err, bad)
	}
}

func TestPositionalArgs(t *testing.T) {
	t.Parallel()
	p, err := toPositional(`SELECT $2, $1, $2`)
	require.NoError(t, err)
	got, err := p.args([]any{"a", "b"})
	require.NoError(t, err)
	require.Equal(t, []any{"b", "a", "b"}, got)
	_, err = p.args([]any{"a"})
	require.ErrorContains(t, err, "$2")

	id, err := toPositional(`SELECT $1, $2`)
	require.NoError(t, err)
	args := []any{1, 2}
	got, err = id.args(args)
	require.NoError(t, err)
	require.Same(t, &args[0], &got[0], "identity order passes the caller's slice")
}

// FuzzToPositional checks that the rewrite only ever replaces a $N by a
// "?" and records N-1, whatever the statement.
func FuzzToPositional(f *testing.F) {
	for _, s := range []string{`SELECT $1`, `INSERT INTO t VALUES ($1,$2)`, `'$1'`, `-- $1`, `/* $1 */ $2`, `$1$2`, `"$"$3`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		p, err := toPositional(q)
		if err != nil {
			return
		}
		if n := strings.Count(p.query, "?"); n != len(p.order)+strings.Count(q, "?") {
			t.Fatalf("%q -> %q: %d placeholders for %d parameters", q, p.query, n, len(p.order))
		}
		for _, i := range p.order {
			if i < 0 || !strings.Contains(q, "$") {
				t.Fatalf("%q: bad order %v", q, p.order)
			}
		}
		if len(p.query) > len(q) {
			t.Fatalf("%q grew to %q", q, p.query)
		}
	})
}
