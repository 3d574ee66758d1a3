package report

import (
	"strings"
	"testing"
)

func TestMaskDigits(t *testing.T) {
	for in, want := range map[string]string{
		"req-17":        "req-#",
		"req-1024 x 33": "req-# x #",
		"no digits":     "no digits",
		"":              "",
	} {
		if got := maskDigits(in); got != want {
			t.Errorf("maskDigits(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFirstString(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{
		{"hello\x00world", "hello"},
		{"\x01\x02abc\x00defgh\x00", "defgh"},
		{"\xff\xff\xff\xff\xff\xff\xff\xffcached-7\x00", "cached-7"},
		{"abc", ""},
		{strings.Repeat("x", 100), strings.Repeat("x", 80)},
	} {
		if got := firstString([]byte(c.in)); got != c.want {
			t.Errorf("firstString(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestHexdump(t *testing.T) {
	got := hexdump([]byte("GET /api/users/5 HTTP/1.1\x00"), "")
	want := []string{
		"0000  47 45 54 20 2f 61 70 69  2f 75 73 65 72 73 2f 35  |GET /api/users/5|",
		"0010  20 48 54 54 50 2f 31 2e  31 00                    | HTTP/1.1.|",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("hexdump:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestIsText(t *testing.T) {
	if !isText(0x0000006f6c6c6568) || isText(0) || isText(0x00007f1234567890) {
		t.Errorf("isText")
	}
}
