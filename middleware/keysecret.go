package middleware

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
)

// ErrInvalidKeySecret reports a bad KeySecretEntry given to NewKeySecret.
var ErrInvalidKeySecret = errors.New("middleware: invalid key+secret entry")

// KeySecretEntry is one key id, its secret, and the caller it stands for.
type KeySecretEntry struct {
	// Key is the public key id sent in the key header (Modal-Key).
	Key string
	// Secret is sent in the secret header (Modal-Secret); at least
	// MinStaticTokenLength bytes of visible ASCII.
	Secret  string
	Subject string
	Groups  []string
}

// KeySecret authenticates key+secret header pairs, as Modal's proxy auth
// tokens. Key ids are identifiers, not secrets, and are looked up in a map;
// secrets are kept as SHA-256 hashes and compared in constant time. An
// unknown key id is compared against a random hash so that it costs the same
// as a wrong secret.
type KeySecret struct {
	keys  map[string]keySecretEntry
	decoy [sha256.Size]byte
}

type keySecretEntry struct {
	hash [sha256.Size]byte
	id   Identity
}

var _ Authenticator = (*KeySecret)(nil)

// NewKeySecret builds a KeySecret from entries. Keys must be unique.
func NewKeySecret(entries ...KeySecretEntry) (*KeySecret, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrInvalidKeySecret)
	}
	ks := &KeySecret{keys: make(map[string]keySecretEntry, len(entries))}
	_, _ = rand.Read(ks.decoy[:]) // never fails (crypto/rand since Go 1.24)
	for i, e := range entries {
		switch {
		case e.Key == "" || len(e.Key) > MaxCredentialSize || !visibleASCII(e.Key):
			return nil, fmt.Errorf("%w: entry %d: key is empty, too long or not visible ASCII", ErrInvalidKeySecret, i+1)
		case len(e.Secret) < MinStaticTokenLength || len(e.Secret) > MaxCredentialSize || !visibleASCII(e.Secret):
			return nil, fmt.Errorf("%w: entry %d: secret must be %d to %d bytes of visible ASCII", ErrInvalidKeySecret, i+1, MinStaticTokenLength, MaxCredentialSize)
		case e.Subject == "":
			return nil, fmt.Errorf("%w: entry %d: empty subject", ErrInvalidKeySecret, i+1)
		}
		if _, dup := ks.keys[e.Key]; dup {
			return nil, fmt.Errorf("%w: entry %d: duplicate key", ErrInvalidKeySecret, i+1)
		}
		groups := append([]string{}, e.Groups...)
		ks.keys[e.Key] = keySecretEntry{
			hash: sha256.Sum256([]byte(e.Secret)),
			id:   Identity{Subject: e.Subject, Groups: groups},
		}
	}
	return ks, nil
}

// Authenticate accepts a SourceKeySecret credential whose key is known and
// whose secret matches. The returned Identity's Groups slice is shared:
// treat it as read-only.
func (ks *KeySecret) Authenticate(_ context.Context, c Credentials) (Identity, error) {
	if c.Source != SourceKeySecret {
		return Identity{}, ErrInvalidCredentials
	}
	e, known := ks.keys[c.Value]
	want := ks.decoy
	if known {
		want = e.hash
	}
	got := sha256.Sum256([]byte(c.Secret))
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !known {
		return Identity{}, ErrInvalidCredentials
	}
	return e.id, nil
}
