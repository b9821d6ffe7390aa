// Package storable says whether text from a request can be stored as it
// is: valid UTF-8 without NUL. PostgreSQL refuses anything else in a text
// column (failing the whole transaction with it), SQLite keeps it and serves
// it back unchanged, and Go's encoding/json quietly turns invalid UTF-8 and
// lone surrogates ("\ud800") into U+FFFD. So such text is refused where it
// comes in, naming where it was, rather than stored, altered or allowed to
// fail other requests' writes.
//
//	if !storable.Text(r.URL.Query().Get("webhook")) { /* 422 naming query.webhook */ }
//	if where, ok := storable.JSON(body); !ok { /* 422 naming "body"+where */ }
//
// On the data path (request → auth → environment → dispatcher → scheduler →
// node agent → store → callbacks) it guards the way into the store: the
// environment and the dispatcher's Submit check text with it as it comes
// in. It imports only the standard library and jsontext, and must not import
// any taskgate package: tasks/dispatch imports it.
package storable
