// Package console is the web console a webhook environment serves at
// /console: server-rendered pages (runs, a run, tasks, nodes and GPUs,
// the queue, charts) and one small script that fills them from the
// environment's own JSON API, with the browser's cookie credential.
//
//	c, err := console.New(console.Config{API: apiRouter, Dispatcher: d, Serves: env.Serves})
//	r.Mount("/console", c.Handler())
//
// It adds no authorization of its own: the pages are behind the
// environment's passthrough auth like the API, the script asks the API,
// and a run's page asks the API's GET /run/{name} in process, with the
// caller's request, whether the caller may see it (someone else's run is
// 404 there and here). The charts are drawn as SVG from a Sampler that
// follows the dispatcher's events: no external time-series database.
//
// It sits beside the webhook environment on the data path (request →
// auth → environment → dispatcher → …), a view of it; only the webhook
// environment imports it.
package console
