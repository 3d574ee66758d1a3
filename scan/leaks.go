package scan

import "github.com/heapsift/heapsift/addrspace"

// classifyLeaks splits the unreached chunks into definite and indirect.
// Leaked chunks are taken in address order; each one not yet claimed leads
// a depth-first walk that claims everything it reaches as indirect, and a
// former leader reached that way becomes indirect too. What stays a leader
// is exactly one member of each group of leaked chunks that nothing outside
// the group points to: a lone leak, or one member of an unreferenced cycle.
func (m *marker) classifyLeaks(w *worker) {
	const leader = Definite
	var stack []int32
	for i := range m.v {
		if m.v[i] != Unreached {
			continue
		}
		m.v[i] = leader
		stack = append(stack[:0], int32(i))
		for len(stack) > 0 {
			j := int(stack[len(stack)-1])
			stack = stack[:len(stack)-1]
			w.eachPointer(j, func(k int) {
				switch {
				case k == i:
				case m.v[k] == Unreached:
					m.v[k] = Indirect
					stack = append(stack, int32(k))
				case m.v[k] == leader:
					m.v[k] = Indirect // its own group is already claimed
				}
			})
		}
	}
}

// eachPointer calls fn for every chunk that chunk j's contents point into.
func (w *worker) eachPointer(j int, fn func(k int)) {
	m := w.m
	if m.c.NoPointers(j) {
		return
	}
	u := m.c.User(j)
	end := u + addrspace.Addr(m.h.Usable(j))
	for a := u; a < end; {
		n := min(uint64(end-a), 1<<20)
		if cap(w.buf) < int(n) {
			w.buf = make([]byte, n)
		}
		b := w.buf[:n]
		if _, err := m.s.ReadAt(b, a); err != nil {
			m.unread.Add(uint64(end - a))
			return
		}
		for _, w := range addrspace.Words(b) {
			if w < m.lo || w >= m.hi {
				continue
			}
			if k := m.userChunk(w); k >= 0 {
				fn(k)
			}
		}
		a += addrspace.Addr(n)
	}
}
