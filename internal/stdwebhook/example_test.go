package stdwebhook_test

import (
	"fmt"
	"net/http"
	"time"

	"github.com/taskgate/taskgate/internal/stdwebhook"
)

// The specification's test vector: sign, then verify on the receiving side.
func Example() {
	secret, err := stdwebhook.ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		panic(err)
	}
	body := []byte(`{"test": 2432232314}`)
	sent := time.Unix(1614265330, 0)

	h := http.Header{}
	stdwebhook.SetHeaders(h, []stdwebhook.Secret{secret}, "msg_p5jXN8AQM9LWM0D4loKWxJek", sent, body)
	fmt.Println(h.Get(stdwebhook.HeaderSignature))

	received := sent.Add(30 * time.Second)
	fmt.Println(stdwebhook.Verify([]stdwebhook.Secret{secret}, h, body, received, stdwebhook.DefaultTolerance))
	fmt.Println(stdwebhook.Verify([]stdwebhook.Secret{secret}, h, []byte(`{"test": 1}`), received, stdwebhook.DefaultTolerance))
	// Output:
	// v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
	// <nil>
	// stdwebhook: verification failed: no matching signature
}
