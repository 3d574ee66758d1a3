package testprog

import (
	"fmt"
	"sort"
	"strings"
)

// maxExamples is how many addresses a failure message lists.
const maxExamples = 5

// Check compares heapsift's verdicts (user pointer -> "definite",
// "indirect" or "possible") with a fixture's truth, by the scoring rules of
// the acceptance grader (score() in ../shared/acceptance/grade.py), and
// returns one human-readable message per broken rule (nil when the report
// passes):
//   - every leaked chunk is reported;
//   - nothing outside leaked ∪ possible is reported, except that a
//     possible_allowed chunk may be reported as "possible" (so no freed and
//     no reachable chunk is reported);
//   - the definite set is exact: every definite chunk is reported definite,
//     no other leaked chunk is, except members of a cycle, and every cycle
//     has at least one member reported definite;
//   - the possible set is exact, apart from possible_allowed chunks.
//
// An address reported under two kinds cannot be expressed in the map;
// ParseReport rejects it.
func Check(truth *Truth, reported map[uint64]string) []string {
	var fails []string
	add := func(format string, set []uint64, args ...any) {
		if len(set) > 0 {
			fails = append(fails, fmt.Sprintf(format, args...)+": "+examples(set))
		}
	}

	var unknown, fp, fpFreed, fpReach, dExtra, pExtra []uint64
	rd := AddrSet{}
	rp := AddrSet{}
	cyc := truth.CycleMembers()
	for a, kind := range reported {
		switch kind {
		case KindDefinite:
			rd[a] = struct{}{}
		case KindPossible:
			rp[a] = struct{}{}
		case KindIndirect:
		default:
			unknown = append(unknown, a)
		}
		if !truth.Leaked.Has(a) && !truth.Possible.Has(a) && !(truth.PossibleAllowed.Has(a) && kind == KindPossible) {
			fp = append(fp, a)
			if truth.Freed.Has(a) {
				fpFreed = append(fpFreed, a)
			}
			if truth.Reachable.Has(a) {
				fpReach = append(fpReach, a)
			}
		}
		if kind == KindDefinite && truth.Leaked.Has(a) && !truth.Definite.Has(a) && !cyc.Has(a) {
			dExtra = append(dExtra, a)
		}
		if kind == KindPossible && !truth.Possible.Has(a) && !truth.PossibleAllowed.Has(a) {
			pExtra = append(pExtra, a)
		}
	}
	add("reported with an unknown kind", unknown)

	var missed []uint64
	for a := range truth.Leaked {
		if _, ok := reported[a]; !ok {
			missed = append(missed, a)
		}
	}
	add("missed %d of %d leaked chunks", missed, len(missed), len(truth.Leaked))

	var detail []string
	if len(fpFreed) > 0 {
		detail = append(detail, fmt.Sprintf("%d freed", len(fpFreed)))
	}
	if len(fpReach) > 0 {
		detail = append(detail, fmt.Sprintf("%d in the reachable sample", len(fpReach)))
	}
	suffix := ""
	if len(detail) > 0 {
		suffix = " (" + strings.Join(detail, ", ") + ")"
	}
	add("%d false positives%s", fp, len(fp), suffix)

	var dMissing []uint64
	for a := range truth.Definite {
		if !rd.Has(a) {
			dMissing = append(dMissing, a)
		}
	}
	add("%d definite chunks not reported definite", dMissing, len(dMissing))
	add("%d leaked chunks reported definite that are indirect", dExtra, len(dExtra))
	for i, c := range truth.Cycles {
		ok := false
		for _, a := range c {
			ok = ok || rd.Has(a)
		}
		if !ok {
			add("cycle %d (%d members) has no member reported definite", c, i, len(c))
		}
	}

	var pMissing []uint64
	for a := range truth.Possible {
		if !rp.Has(a) {
			pMissing = append(pMissing, a)
		}
	}
	add("%d possible chunks not reported possible", pMissing, len(pMissing))
	add("%d chunks reported possible that are not", pExtra, len(pExtra))
	return fails
}

// examples formats up to maxExamples of the addresses, lowest first.
func examples(set []uint64) string {
	s := append([]uint64(nil), set...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var parts []string
	for i, a := range s {
		if i == maxExamples {
			parts = append(parts, fmt.Sprintf("(+%d more)", len(s)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%#x", a))
	}
	return strings.Join(parts, " ")
}
