-- Browser sessions signed in at /auth/login (middleware.Sessions), keyed
-- by the SHA-256 of the session id the cookie holds: the id itself is
-- never stored. Deleting a row signs the browser out in every process.
CREATE TABLE sessions (
    id_hash     TEXT PRIMARY KEY,
    subject     TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    email       TEXT NOT NULL DEFAULT '',
    group_names TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
-- Expired sessions are deleted by expiry.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
