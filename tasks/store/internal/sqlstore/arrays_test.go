package sqlstore

import (
	"context"
	"strings"
	"testing"
)

// recordTx records the arguments of Exec.
type recordTx struct {
	Tx
	args []any
}

func (r *recordTx) Exec(_ context.Context, _ string, args ...any) (int64, error) {
	r.args = args
	return 0, nil
}

func TestInsertArraysTransposesRows(t *testing.T) {
	t.Parallel()
	tx := &recordTx{}
	err := insertArrays(context.Background(), tx, "q", [][]any{{"a", 1, int64(10)}, {"b", 2, int64(20)}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tx.args) != 3 {
		t.Fatalf("%d array parameters, want 3", len(tx.args))
	}
	if got := tx.args[0].([]string); strings.Join(got, ",") != "a,b" {
		t.Fatalf("text column %v", got)
	}
	if got := tx.args[1].([]int64); got[0] != 1 || got[1] != 2 {
		t.Fatalf("int column %v", got)
	}
	if got := tx.args[2].([]int64); got[0] != 10 || got[1] != 20 {
		t.Fatalf("int64 column %v", got)
	}
	if err := insertArrays(context.Background(), tx, "q", nil); err != nil {
		t.Fatalf("no rows: %v", err)
	}
	for _, rows := range [][][]any{
		{{"a"}, {3}},        // a number in a text column
		{{1}, {"x"}},        // text in a number column
		{{1.5}},             // a type arrays do not carry
		{{"a"}, {[]byte{}}}, // bytes in a text column
	} {
		if err := insertArrays(context.Background(), &recordTx{}, "q", rows); err == nil {
			t.Fatalf("%v: no error", rows)
		}
	}
}
