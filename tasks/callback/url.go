package callback

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// MaxURLLength bounds a callback URL. Browsers and proxies commonly stop
// near 2 KiB; a longer one is almost surely abuse.
const MaxURLLength = 2048

// ErrInvalidURL is wrapped by every refusal of ValidateURL.
var ErrInvalidURL = errors.New("callback: invalid webhook URL")

// ValidateURL checks the syntax of a callback URL given with the webhook
// query parameter: absolute http or https, a host, no user information
// (credentials in a URL end up in logs), a numeric port if any, at most
// MaxURLLength bytes. It does not resolve the host: whether the address may
// be reached is decided when the callback is dialed (see NewClient), since a
// name can resolve differently by then.
func ValidateURL(raw string) error {
	if raw == "" {
		return fmt.Errorf("%w: empty", ErrInvalidURL)
	}
	if len(raw) > MaxURLLength {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidURL, MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL; it came from the caller, so that is fine.
		return fmt.Errorf("%w: %w", ErrInvalidURL, err)
	}
	switch u.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("%w: scheme must be http or https", ErrInvalidURL)
	}
	if u.Opaque != "" {
		return fmt.Errorf("%w: not a hierarchical URL", ErrInvalidURL)
	}
	if u.User != nil {
		return fmt.Errorf("%w: user information is not allowed", ErrInvalidURL)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%w: host required", ErrInvalidURL)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%w: bad port", ErrInvalidURL)
		}
	}
	return nil
}
