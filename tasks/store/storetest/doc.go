// Package storetest is the conformance suite every store.Store passes:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openFresh(t) })
//	}
//
// open must return an empty store for each call; Run closes it.
package storetest
