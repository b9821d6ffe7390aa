package edge

import (
	"io"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// KeepAlive is how often an idle event stream sends a comment, so proxies
// and clients do not time it out.
const KeepAlive = 15 * time.Second

// OpenEventStream starts a Server-Sent Events response (no caching, no
// proxy buffering) and returns its writer and a flush for each event.
func OpenEventStream(hctx huma.Context) (io.Writer, func()) {
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-cache")
	hctx.SetHeader("X-Accel-Buffering", "no")
	hctx.SetStatus(http.StatusOK)
	w := hctx.BodyWriter()
	return w, func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}
