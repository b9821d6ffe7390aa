package dispatch

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
)

// TestRequestHashOfDefaultOptionsIsUnchanged: a key stored before the
// options counted must still match its retry with default options.
func TestRequestHashOfDefaultOptionsIsUnchanged(t *testing.T) {
	sum := sha256.Sum256([]byte("demo/development/echo\x00{\"message\":\"hi\"}"))
	if got, want := requestHash("demo/development/echo", []byte(`{"message":"hi"}`), 0, "", nil), hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("requestHash = %s, want %s", got, want)
	}
	if requestHash("a", nil, 1, "", nil) == requestHash("a", nil, 0, "", nil) {
		t.Fatal("the priority does not count")
	}
}
