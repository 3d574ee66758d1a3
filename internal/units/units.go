// Package units formats counts and byte sizes for people, the same way in
// every report heapsift prints.
package units

import (
	"fmt"
	"strconv"
)

// Count formats n with thousands separators, as valgrind does: 1,712.
func Count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// Size formats a byte count in binary units with one decimal (1.6 KiB,
// 230.0 MiB); below 1 KiB it is n followed by unit ("B" or "bytes").
func Size(n uint64, unit string) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d %s", n, unit)
}
