package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// credentials is what login stores: a token per server, and the server
// of the last login, used when neither --url nor TASKGATE_URL names one.
type credentials struct {
	URL    string            `json:"url"`
	Tokens map[string]string `json:"tokens"`
}

// credentialsPath is os.UserConfigDir()/taskgate/credentials.json.
func (c *cli) credentialsPath() (string, error) {
	dir, err := c.env.configDir()
	if err != nil {
		return "", fmt.Errorf("finding the configuration folder: %w", err)
	}
	return filepath.Join(dir, "taskgate", "credentials.json"), nil
}

// loadCredentials reads the stored credentials; none stored is empty,
// not an error.
func (c *cli) loadCredentials() (*credentials, error) {
	p, err := c.credentialsPath()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return &credentials{Tokens: map[string]string{}}, nil
	}
	if err != nil {
		return nil, err
	}
	var cr credentials
	if err := json.Unmarshal(b, &cr); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if cr.Tokens == nil {
		cr.Tokens = map[string]string{}
	}
	return &cr, nil
}

// saveCredentials writes cr where only the user may read it: the folder
// 0700, the file 0600, replaced whole (a crash leaves the old file).
func (c *cli) saveCredentials(cr *credentials) (string, error) {
	p, err := c.credentialsPath()
	if err != nil {
		return "", err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	// The folder is ours: keep it private even if it was made wider.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	b, err := json.MarshalIndent(cr, "", "  ")
	if err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".credentials-*.json") // created 0600
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return p, os.Rename(f.Name(), p)
}
