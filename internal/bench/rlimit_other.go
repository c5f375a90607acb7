//go:build !unix

package bench

// ensureOpenFiles does nothing where there is no RLIMIT_NOFILE.
func ensureOpenFiles(uint64) error { return nil }
