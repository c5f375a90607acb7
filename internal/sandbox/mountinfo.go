package sandbox

import (
	"strconv"
	"strings"
)

// UnescapeMountinfo undoes the octal escapes of a path in
// /proc/self/mountinfo (\040 for a space...). Exported for
// internal/hostcheck, which reads the mount table the way this package
// does.
func UnescapeMountinfo(s string) string { return unescapeMountinfo(s) }

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for space...).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
