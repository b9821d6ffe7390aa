// Package server is the proxied server environment (Modal's @web_server):
// it starts a program that serves HTTP on a port, keeps it running, and
// reverse-proxies the environment's requests to it, WebSockets and
// streamed responses included.
//
//	env := server.MustNew(server.Config{
//		Settings: environments.Settings{Name: "notebook", PathPrefix: "/notebook"},
//		Command:  []string{"python", "-m", "http.server", "8000", "--bind", "127.0.0.1"},
//		Port:     8000,
//	})
//
// On the data path it is the environment: request → auth and limits
// (environments.Wrap, middleware) → server → the program, which gets the
// verified caller in SubjectHeader. It runs no tasks, so it must not import
// tasks or their dispatcher, nor the other environment kinds.
package server
