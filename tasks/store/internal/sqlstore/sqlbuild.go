package sqlstore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// values writes one "($n, $n+1, …)" tuple of cols parameters after the n
// already used.
func values(sb *strings.Builder, n, cols int) { typedValues(sb, n, cols, nil) }

// typedValues is values with the parameters cast to types, where the
// dialect needs it: a VALUES list outside an INSERT gives its columns no
// type of their own. An empty type (or a nil types) leaves one as it is.
func (d Dialect) typedValues(types []string) func(sb *strings.Builder, n, cols int) {
	if !d.CastParams {
		return values
	}
	return func(sb *strings.Builder, n, cols int) { typedValues(sb, n, cols, types) }
}

func typedValues(sb *strings.Builder, n, cols int, types []string) {
	sb.WriteByte('(')
	for c := range cols {
		if c > 0 {
			sb.WriteByte(',')
		}
		sb.WriteByte('$')
		sb.WriteString(strconv.Itoa(n + c + 1))
		if c < len(types) && types[c] != "" {
			sb.WriteString("::")
			sb.WriteString(types[c])
		}
	}
	sb.WriteByte(')')
}

// valuesChunks builds the multi-row statements "prefix (…),(…) suffix" that
// insert the rows idx, cols values each (row appends a row's values to
// args), at most MaxParams parameters per statement, and calls exec with
// each statement, its arguments and the rows it holds.
func (s *Store) valuesChunks(idx []int, cols int, prefix, suffix string,
	row func(args []any, i int) []any, exec func(q string, args []any, chunk []int) error) error {
	return s.typedValuesChunks(idx, make([]string, cols), prefix, suffix, row, exec)
}

// typedValuesChunks is valuesChunks with a column's parameters cast to
// types[c] where the dialect needs it (typedValues).
func (s *Store) typedValuesChunks(idx []int, types []string, prefix, suffix string,
	row func(args []any, i int) []any, exec func(q string, args []any, chunk []int) error) error {
	cols, values := len(types), s.d.typedValues(types)
	for _, chunk := range chunks(idx, s.d.MaxParams/cols) {
		var sb strings.Builder
		sb.WriteString(prefix)
		args := make([]any, 0, len(chunk)*cols)
		for j, i := range chunk {
			if j > 0 {
				sb.WriteByte(',')
			}
			values(&sb, len(args), cols)
			args = row(args, i)
		}
		sb.WriteString(suffix)
		if err := exec(sb.String(), args, chunk); err != nil {
			return err
		}
	}
	return nil
}

// Multi-row statements: a batch of up to exactRows rows is one statement
// of exactly that many rows (one round trip on PostgreSQL); a larger batch
// is split greedily into chunkSizes, with the remainder as one exact
// chunk. That bounds the distinct statement texts per kind to
// exactRows+len(chunkSizes), within the drivers' prepared-statement caches.
const exactRows = 32

var chunkSizes = []int{256, 128, 64, 32}

// chunks splits idx into pieces as above, none above limit rows.
func chunks(idx []int, limit int) [][]int {
	limit = max(limit, 1)
	var out [][]int
	for _, size := range chunkSizes {
		size = min(size, limit)
		for len(idx) > exactRows && len(idx) >= size {
			out = append(out, idx[:size])
			idx = idx[size:]
		}
	}
	for len(idx) > 0 {
		n := min(len(idx), limit)
		out = append(out, idx[:n])
		idx = idx[n:]
	}
	return out
}

// insertArrays runs q with one array parameter per column of rows: text
// columns hold strings, bigint columns ints (Dialect.ArrayInsert).
func insertArrays(ctx context.Context, tx Tx, q string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	cols := make([]any, len(rows[0]))
	for c, v := range rows[0] {
		var strs []string
		var ints []int64
		switch v.(type) {
		case string:
			strs = make([]string, len(rows))
			cols[c] = strs
		case int, int64:
			ints = make([]int64, len(rows))
			cols[c] = ints
		}
		for i, r := range rows {
			switch x := r[c].(type) {
			case string:
				if strs == nil {
					return fmt.Errorf("row %d column %d: %T in an array insert of %T", i, c, x, v)
				}
				strs[i] = x
			case int:
				if ints == nil {
					return fmt.Errorf("row %d column %d: %T in an array insert of %T", i, c, x, v)
				}
				ints[i] = int64(x)
			case int64:
				if ints == nil {
					return fmt.Errorf("row %d column %d: %T in an array insert of %T", i, c, x, v)
				}
				ints[i] = x
			default:
				return fmt.Errorf("row %d column %d: %T in an array insert", i, c, x)
			}
		}
	}
	_, err := tx.Exec(ctx, q, cols...)
	return err
}

// insertRows inserts rows, each one row's values, with multi-row
// statements after prefix.
func (s *Store) insertRows(ctx context.Context, tx Tx, prefix string, rows [][]any) error {
	if len(rows) == 0 {
		return nil
	}
	idx := make([]int, len(rows))
	for i := range idx {
		idx[i] = i
	}
	return s.valuesChunks(idx, len(rows[0]), prefix, "",
		func(args []any, i int) []any { return append(args, rows[i]...) },
		func(q string, args []any, _ []int) error {
			_, err := tx.Exec(ctx, q, args...)
			return err
		})
}
