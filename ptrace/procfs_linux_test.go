package ptrace

import (
	"strings"
	"testing"

	"github.com/heapsift/heapsift/addrspace"
)

func TestParseMaps(t *testing.T) {
	in := `7fff0000-7fff2000 rw-p 00000000 00:00 0                          [stack]
55d0a000-55d0b000 r-xp 00001000 08:01 1311  /usr/bin/my prog
55d00000-55d01000 r--p 00000000 08:01 1311  /usr/bin/my prog
7f000000-7f100000 rw-s 00200000 00:05 42    /memfd:pool (deleted)
7f200000-7f201000 ---p 00000000 00:00 0 
`
	maps, err := parseMaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []addrspace.Mapping{
		{Start: 0x55d00000, End: 0x55d01000, Perm: addrspace.Read, Dev: "08:01", Inode: 1311, Path: "/usr/bin/my prog"},
		{Start: 0x55d0a000, End: 0x55d0b000, Perm: addrspace.Read | addrspace.Exec, Offset: 0x1000, Dev: "08:01", Inode: 1311, Path: "/usr/bin/my prog"},
		{Start: 0x7f000000, End: 0x7f100000, Perm: addrspace.Read | addrspace.Write | addrspace.Shared, Offset: 0x200000, Dev: "00:05", Inode: 42, Path: "/memfd:pool", Deleted: true},
		{Start: 0x7f200000, End: 0x7f201000, Dev: "00:00"},
		{Start: 0x7fff0000, End: 0x7fff2000, Perm: addrspace.Read | addrspace.Write, Dev: "00:00", Path: "[stack]"},
	}
	if len(maps) != len(want) {
		t.Fatalf("got %d mappings, want %d: %+v", len(maps), len(want), maps)
	}
	for i := range want {
		if maps[i] != want[i] {
			t.Errorf("mapping %d:\n got %+v\nwant %+v", i, maps[i], want[i])
		}
	}
	for _, bad := range []string{"zzz", "1000-0 r--p 0 00:00 0", "1000-2000 r--p 0 00:00", "1000-2000 r--p 0 00:00 x /a"} {
		if _, err := parseMaps(strings.NewReader(bad + "\n")); err == nil {
			t.Errorf("parseMaps(%q) succeeded", bad)
		}
	}
}
