package stdwebhook_test

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/taskgate/taskgate/internal/stdwebhook"
)

func TestLoadOrCreateSecretFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "webhook.secret")

	first, created, err := stdwebhook.LoadOrCreateSecretFile(path)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v, want a new secret", created, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secret file mode: %v %v, want 0600", fi.Mode(), err)
	}
	again, created, err := stdwebhook.LoadOrCreateSecretFile(path)
	if err != nil || created || again.Encode() != first.Encode() {
		t.Fatalf("second call: created=%v err=%v, want the stored secret", created, err)
	}
}

// Processes starting together on one data directory agree on one secret.
func TestLoadOrCreateSecretFileRace(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "webhook.secret")
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Go(func() {
			s, _, err := stdwebhook.LoadOrCreateSecretFile(path)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = s.Encode()
		})
	}
	wg.Wait()
	for _, g := range got[1:] {
		if g != got[0] {
			t.Fatal("racing callers got different secrets")
		}
	}
}

func TestLoadOrCreateSecretFileRefusesGarbage(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(path, []byte("not a secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := stdwebhook.LoadOrCreateSecretFile(path); !errors.Is(err, stdwebhook.ErrInvalidSecret) {
		t.Fatalf("garbage file: %v, want ErrInvalidSecret", err)
	}
}
