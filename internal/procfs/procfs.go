// Package procfs reads single fields of the "Key:   value" files of /proc
// (status, meminfo, smaps_rollup), for the commands and the benchmarks.
package procfs

import (
	"os"
	"strconv"
	"strings"
)

// Field returns the value of key in the /proc file at path, trimmed, and
// whether the file holds it.
func Field(path, key string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, key+":"); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// Bytes returns a field given in kB ("RssAnon:  1234 kB") in bytes, or 0
// when the file or the field is missing or malformed.
func Bytes(path, key string) uint64 {
	v, _ := Field(path, key)
	kb, err := strconv.ParseUint(strings.TrimSuffix(v, " kB"), 10, 64)
	if err != nil {
		return 0
	}
	return kb << 10
}
