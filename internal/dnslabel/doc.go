// Package dnslabel is the one place where the rules of a DNS label are
// written: 1 to 63 lowercase ASCII letters, digits and dashes, neither the
// first nor the last a dash (RFC 1123's host name label, lowercase only).
//
// Every name taskgate checks is such a label or is built of them; each
// caller adds the rule of its own purpose and nothing else:
//
//   - task, environment and endpoint names: a label (tasks.ValidName);
//   - URL labels a user gives: a label without "--", which separates the
//     source from the label in a subdomain (environments.ValidateLabel);
//   - custom domains: labels joined by dots, 253 characters at most
//     (Hostname);
//   - task allowlist entries: a label in which '*' stands for any run of
//     label characters (the webhook environment's AllowedTasks).
//
// It sits below everything that names things (tasks, environments) and
// imports nothing but the standard library.
//
// Place on the data path (request → auth → environment → dispatcher →
// scheduler → node agent → store → callbacks): beside it, under the names
// the first steps check. It must not import anything of taskgate.
package dnslabel
