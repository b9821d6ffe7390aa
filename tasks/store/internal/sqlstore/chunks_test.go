package sqlstore

import (
	"testing"
)

func TestChunks(t *testing.T) {
	t.Parallel()
	sizes := map[int]bool{}
	for n := 0; n <= 700; n++ {
		for _, limit := range []int{1, 7, 32, 100, 2166, 65000} {
			idx := make([]int, n)
			for i := range idx {
				idx[i] = i
			}
			next := 0
			cs := chunks(idx, limit)
			for _, c := range cs {
				if len(c) == 0 || len(c) > limit {
					t.Fatalf("n=%d limit=%d: chunk of %d", n, limit, len(c))
				}
				for _, v := range c {
					if v != next {
						t.Fatalf("n=%d limit=%d: got %d, want %d", n, limit, v, next)
					}
					next++
				}
				if limit >= 256 {
					sizes[len(c)] = true
				}
			}
			if next != n {
				t.Fatalf("n=%d limit=%d: covered %d", n, limit, next)
			}
			if n > 0 && n <= exactRows && limit >= exactRows && len(cs) != 1 {
				t.Fatalf("n=%d: %d statements, want 1", n, len(cs))
			}
		}
	}
	if len(sizes) > exactRows+len(chunkSizes) {
		t.Fatalf("%d distinct statement sizes", len(sizes))
	}
}
