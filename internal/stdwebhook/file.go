package stdwebhook

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// maxSecretFile bounds what LoadOrCreateSecretFile reads.
const maxSecretFile = 1 << 10

// LoadOrCreateSecretFile returns the secret stored at path, creating the
// file with a new secret (mode 0600) when it does not exist: the signing
// secret a server generates when TASKGATE_WEBHOOK_SECRET is unset, kept in
// its data directory so that callbacks stay verifiable across restarts.
// created reports whether a new secret was generated. Two processes racing
// to create it agree on one secret: the loser reads the winner's file.
func LoadOrCreateSecretFile(path string) (secret Secret, created bool, err error) {
	s, err := readSecretFile(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	// Write the whole file under a temporary name, then link it into place:
	// the link appears with its content or not at all, and fails if another
	// process linked first, so nobody ever reads a half-written secret.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".webhook-secret-*")
	if err != nil {
		return Secret{}, false, fmt.Errorf("stdwebhook: create secret file: %w", err)
	}
	defer os.Remove(tmp.Name())
	s = NewSecret()
	_, werr := tmp.WriteString(s.Encode() + "\n")
	if serr := tmp.Sync(); werr == nil {
		werr = serr
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return Secret{}, false, fmt.Errorf("stdwebhook: write secret file: %w", werr)
	}
	switch err := os.Link(tmp.Name(), path); {
	case err == nil:
		return s, true, nil
	case errors.Is(err, fs.ErrExist):
		s, err := readSecretFile(path)
		return s, false, err
	default:
		return Secret{}, false, fmt.Errorf("stdwebhook: store secret file: %w", err)
	}
}

func readSecretFile(path string) (Secret, error) {
	f, err := os.Open(path)
	if err != nil {
		return Secret{}, err
	}
	defer f.Close()
	buf := make([]byte, maxSecretFile+1)
	n, _ := f.Read(buf)
	if n > maxSecretFile {
		return Secret{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrInvalidSecret, path, maxSecretFile)
	}
	s, err := ParseSecret(strings.TrimSpace(string(buf[:n])))
	if err != nil {
		return Secret{}, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}
