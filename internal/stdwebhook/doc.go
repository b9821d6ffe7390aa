// Package stdwebhook implements the signing and verification primitives of the
// Standard Webhooks specification, version 1
// (https://www.standardwebhooks.com/).
//
// A message is signed with HMAC-SHA256 over "<id>.<unix timestamp>.<body>" and
// sent with three headers:
//
//	webhook-id:        msg_p5jXN8AQM9LWM0D4loKWxJek   (stable across retries)
//	webhook-timestamp: 1614265330                     (seconds, fresh per attempt)
//	webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=
//
// Secrets are written "whsec_" followed by the base64 of 24 to 64 random bytes.
// While a secret rotates the sender signs with every active secret, and the
// signature header carries one space-separated entry per secret; a receiver
// accepts the message when any entry matches any of its secrets.
//
//	secret, _ := stdwebhook.ParseSecret(os.Getenv("TASKGATE_WEBHOOK_SECRET"))
//	stdwebhook.SetHeaders(req.Header, []stdwebhook.Secret{secret}, id, time.Now(), body)
//	...
//	err := stdwebhook.Verify([]stdwebhook.Secret{secret}, r.Header, body, time.Now(), stdwebhook.DefaultTolerance)
//
// A server without a configured secret keeps a generated one in its data
// directory with LoadOrCreateSecretFile.
//
// The package is internal: users verify callbacks with middleware.VerifyWebhook,
// and taskgate signs them in package tasks/callback.
//
// It stands at both ends of the callbacks step of the data path (request →
// auth → environment → dispatcher → scheduler → node agent → store →
// callbacks): tasks/callback signs with it, middleware.VerifyWebhook
// verifies with it, framework loads the secret. It imports only the standard
// library and must not import any taskgate package: middleware and tasks
// import it.
package stdwebhook
