package sqlite

import (
	"fmt"
	"strings"
	"sync"
)

// The store's SQL numbers its parameters the PostgreSQL way ($1, $2, ...).
// SQLite accepts that syntax, but it records each numbered or named
// parameter in a list that sqlite3_bind_parameter_name searches linearly,
// and modernc.org/sqlite asks for every parameter's name when it binds: a
// group commit's INSERT of 64 runs (960 parameters) spent more time in that
// search than in the insert. Anonymous "?" parameters are not in the list,
// so every statement is rewritten to them once, with the order in which
// they take the caller's arguments (a number may be used twice).

// positional is a statement rewritten to anonymous parameters.
type positional struct {
	query string
	// order[i] is the 0-based index of the argument bound to the i-th "?".
	order []int
	// identity: order is 0, 1, 2, ... len(args)-1, so args pass as they are.
	identity bool
}

// args returns the arguments in the order the rewritten query binds them.
func (p *positional) args(args []any) ([]any, error) {
	if p.identity && len(args) == len(p.order) {
		return args, nil
	}
	out := make([]any, len(p.order))
	for i, j := range p.order {
		if j >= len(args) {
			return nil, fmt.Errorf("sqlite: statement uses $%d but has %d arguments", j+1, len(args))
		}
		out[i] = args[j]
	}
	return out, nil
}

// positionalCache remembers rewrites: the store issues a bounded set of
// statements (batch INSERTs differ only by their number of rows).
type positionalCache struct {
	mu sync.RWMutex
	m  map[string]*positional
}

// maxPositional bounds the cache; past it, rewrites are not kept.
const maxPositional = 4096

func (c *positionalCache) get(q string) (*positional, error) {
	c.mu.RLock()
	p := c.m[q]
	c.mu.RUnlock()
	if p != nil {
		return p, nil
	}
	p, err := toPositional(q)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]*positional{}
	}
	if len(c.m) < maxPositional {
		c.m[q] = p
	}
	c.mu.Unlock()
	return p, nil
}

// toPositional rewrites each $N outside string literals, quoted
// identifiers and comments to "?". A "?" or ":name" parameter in q is an
// error: mixing styles would misnumber the arguments.
func toPositional(q string) (*positional, error) {
	var sb strings.Builder
	sb.Grow(len(q))
	p := &positional{identity: true}
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == '\'' || c == '"' || c == '`':
			end := strings.IndexByte(q[i+1:], c)
			if end < 0 {
				return nil, fmt.Errorf("sqlite: unterminated %c in statement", c)
			}
			// A doubled quote inside the literal ends one scan and starts
			// the next, which copies the same bytes.
			sb.WriteString(q[i : i+end+2])
			i += end + 2
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			end := strings.IndexByte(q[i:], '\n')
			if end < 0 {
				end = len(q) - i
			}
			sb.WriteString(q[i : i+end])
			i += end
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("sqlite: unterminated comment in statement")
			}
			sb.WriteString(q[i : i+end+4])
			i += end + 4
		case c == '$':
			j := i + 1
			n := 0
			for j < len(q) && q[j] >= '0' && q[j] <= '9' && n <= 1<<20 {
				n = n*10 + int(q[j]-'0')
				j++
			}
			if j == i+1 || n == 0 || n > 1<<20 {
				return nil, fmt.Errorf("sqlite: bad parameter %q in statement", q[i:min(j+1, len(q))])
			}
			if n-1 != len(p.order) {
				p.identity = false
			}
			p.order = append(p.order, n-1)
			sb.WriteByte('?')
			i = j
		case c == '?' || c == ':' && i+1 < len(q) && isIdentByte(q[i+1]):
			return nil, fmt.Errorf("sqlite: statement mixes %q parameters with $N", c)
		default:
			sb.WriteByte(c)
			i++
		}
	}
	p.query = sb.String()
	return p, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
