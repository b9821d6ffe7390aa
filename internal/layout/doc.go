// Package layout holds a test of the repository's shape: no non-test Go file
// past 700 lines (past that a file usually holds two concerns), and no public
// package exporting more than 80 names (past that it usually holds two
// features). It sits beside the data path, not on it, and has no non-test
// code: nothing imports it.
package layout
