package identity

import "time"

// Session is a browser's signed-in session, which the server keeps so that
// it can end it (middleware.Sessions): who signed in and until when. The
// browser's cookie holds a random session id; the server keeps only its
// SHA-256, IDHash, so that a copy of the sessions table signs nobody in.
type Session struct {
	// IDHash is the SHA-256 of the session id, in lowercase hex.
	IDHash string
	// Subject, Name, Email and Groups are the signed-in Identity's.
	Subject string
	Name    string
	Email   string
	Groups  []string
	// Created is when the session began; Expires when it ends at the
	// latest.
	Created time.Time
	Expires time.Time
}

// Identity returns the signed-in caller the session stands for, with the
// session's expiry.
func (s Session) Identity() Identity {
	groups := s.Groups
	if groups == nil {
		groups = []string{}
	}
	return Identity{Subject: s.Subject, Name: s.Name, Email: s.Email, Groups: groups, Expiry: s.Expires}
}
