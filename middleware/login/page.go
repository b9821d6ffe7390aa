package login

import (
	"bytes"
	_ "embed"
	"html/template"
	"net/http"
)

var (
	//go:embed page.html
	pageHTML string
	//go:embed style.css
	styleCSS []byte

	pageTemplate = template.Must(template.New("page").Parse(pageHTML))
)

// stylePath serves the pages' style sheet: a file of the origin, so the
// Content-Security-Policy allows no inline style or script at all.
const stylePath = "/auth/style.css"

// pageCSP is the pages' Content-Security-Policy: nothing but the style
// sheet loads, no script at all, no one may frame the page. It has no
// form-action: browsers apply it to the redirects after a post too, and
// signing out goes on to the issuer's origin.
const pageCSP = "default-src 'none'; style-src 'self'; frame-ancestors 'none'; base-uri 'none'"

type pageData struct {
	Next   string
	Error  string
	Logout bool
	// SignedOut says so above the form; with OIDC the page then holds
	// only a link to sign in again.
	SignedOut bool
	OIDC      bool
	Style     string
}

// page renders the sign-in (or sign-out) page with status.
func (h *Handler) page(w http.ResponseWriter, r *http.Request, status int, d pageData) {
	d.Style = stylePath
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, d); err != nil {
		h.cfg.Logger.ErrorContext(r.Context(), "sign-in page", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", pageCSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(buf.Bytes())
	}
}

func serveStyle(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(styleCSS)
}
