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
// A server with Resources (a GPU) or Replicas is held: each replica is a
// long-lived run that the App's scheduler places and that holds its
// devices until it stops; the program starts on the replica's node with
// them in CUDA_VISIBLE_DEVICES and a free port in $PORT:
//
//	env := server.MustNew(server.Config{
//		Settings:  environments.Settings{Name: "infer", PathPrefix: "/infer"},
//		Command:   []string{"python3", "/srv/infer_server.py"},
//		Resources: environments.Resources{GPU: "1"},
//		Replicas:  server.Replicas{Min: 1, Max: 4, MaxInFlight: 8},
//	})
//
// held.go has the replicas' settings and body, pool.go the balancing and
// scaling, process.go the supervision of one process (held or not).
//
// On the data path it is the environment: request → auth and limits
// (environments.Wrap, middleware) → server → the program, which gets the
// verified caller in SubjectHeader. It runs no tasks itself, so it must
// not import tasks or their dispatcher, nor the other environment kinds:
// a held server asks the App for its replicas through environments.Holder
// (Deps.Holder), which framework implements over the dispatcher.
package server
