package middleware

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
)

// MinStaticTokenLength is the shortest static token accepted, in bytes. A
// static token is a long-lived password; shorter ones are guessable.
const MinStaticTokenLength = 16

// ErrInvalidStaticTokens is wrapped by every *StaticTokenError.
var ErrInvalidStaticTokens = errors.New("middleware: invalid static tokens")

// StaticTokenError reports a bad entry of a static token list. It names the
// entry by position and never quotes the token, so it is safe to log or to
// print at startup.
type StaticTokenError struct {
	Entry  int    // 1-based position in the list
	Reason string // what is wrong, without the token text
}

func (e *StaticTokenError) Error() string {
	return fmt.Sprintf("middleware: static token entry %d: %s", e.Entry, e.Reason)
}

// Unwrap returns ErrInvalidStaticTokens.
func (e *StaticTokenError) Unwrap() error { return ErrInvalidStaticTokens }

// StaticToken is one static bearer token and the caller it stands for.
type StaticToken struct {
	Token   string
	Subject string
	Groups  []string
}

// StaticTokens authenticates long-lived bearer tokens from a fixed list, the
// TASKGATE_AUTH_TOKENS mechanism. It keeps only the SHA-256 of each token.
//
// A lookup hashes the presented credential and then compares that hash with
// every stored hash using crypto/subtle, with no early exit, so the time
// taken depends only on the number of tokens, not on which (if any) matched
// or on how many leading bytes agreed. A map keyed by hash would also be
// acceptable (an attacker who learns hash prefixes learns nothing about the
// tokens), but the list is short and the scan removes the question.
type StaticTokens struct {
	entries []staticEntry
}

type staticEntry struct {
	hash [sha256.Size]byte
	id   Identity
}

var _ Authenticator = (*StaticTokens)(nil)

// NewStaticTokens builds a StaticTokens from tokens. Each token must be a
// token68 of at least MinStaticTokenLength bytes and at most
// MaxCredentialSize, each subject and group non-empty visible ASCII without
// ',', ':', '+' or '=', and no token may appear twice.
func NewStaticTokens(tokens ...StaticToken) (*StaticTokens, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("%w: no tokens", ErrInvalidStaticTokens)
	}
	s := &StaticTokens{entries: make([]staticEntry, 0, len(tokens))}
	seen := make(map[[sha256.Size]byte]int, len(tokens))
	for i, t := range tokens {
		bad := func(format string, args ...any) error {
			return &StaticTokenError{Entry: i + 1, Reason: fmt.Sprintf(format, args...)}
		}
		switch {
		case len(t.Token) < MinStaticTokenLength:
			return nil, bad("token shorter than %d bytes", MinStaticTokenLength)
		case len(t.Token) > MaxCredentialSize:
			return nil, bad("token longer than %d bytes", MaxCredentialSize)
		case !validToken68(t.Token):
			return nil, bad("token has characters outside the RFC 6750 token68 set")
		case !validName(t.Subject):
			return nil, bad("subject is empty or has characters outside visible ASCII or one of ,:+=")
		}
		groups := make([]string, 0, len(t.Groups))
		for j, g := range t.Groups {
			if !validName(g) {
				return nil, bad("group %d is empty or has characters outside visible ASCII or one of ,:+=", j+1)
			}
			groups = append(groups, g)
		}
		h := sha256.Sum256([]byte(t.Token))
		if prev, dup := seen[h]; dup {
			return nil, bad("same token as entry %d", prev)
		}
		seen[h] = i + 1
		s.entries = append(s.entries, staticEntry{hash: h, id: Identity{Subject: t.Subject, Groups: groups}})
	}
	return s, nil
}

// ParseStaticTokens parses "token=subject[:group+group],..." as in
// TASKGATE_AUTH_TOKENS. Spaces around entries are ignored. The subject
// starts after the last '=' of an entry, so tokens may end in '=' padding.
// Errors are *StaticTokenError values naming the entry by position.
func ParseStaticTokens(spec string) (*StaticTokens, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("%w: no tokens", ErrInvalidStaticTokens)
	}
	var tokens []StaticToken
	for i, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		eq := strings.LastIndexByte(entry, '=')
		if eq < 0 {
			return nil, &StaticTokenError{Entry: i + 1, Reason: "want token=subject[:group+group]"}
		}
		t := StaticToken{Token: entry[:eq]}
		subject, groups, hasGroups := strings.Cut(entry[eq+1:], ":")
		t.Subject = subject
		if hasGroups {
			t.Groups = strings.Split(groups, "+")
		}
		tokens = append(tokens, t)
	}
	return NewStaticTokens(tokens...)
}

// validName reports whether s can be a subject or group of the static token
// syntax.
func validName(s string) bool {
	return s != "" && visibleASCII(s) && !strings.ContainsAny(s, ",:+=")
}

// Len returns the number of tokens.
func (s *StaticTokens) Len() int { return len(s.entries) }

// Authenticate accepts a bearer, cookie or custom header credential whose
// value is one of the tokens. The returned Identity shares its Groups slice
// with every other request of the same token: treat it as read-only.
func (s *StaticTokens) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	if c.Source == SourceKeySecret || c.Value == "" {
		return Identity{}, ErrInvalidCredentials
	}
	h := sha256.Sum256([]byte(c.Value))
	match := -1
	for i := range s.entries {
		eq := subtle.ConstantTimeCompare(h[:], s.entries[i].hash[:])
		match = subtle.ConstantTimeSelect(eq, i, match)
	}
	if match < 0 {
		return Identity{}, ErrInvalidCredentials
	}
	return s.entries[match].id, nil
}
