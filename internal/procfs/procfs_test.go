package procfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "status")
	os.WriteFile(path, []byte("Name:\tcat\nCapEff:\t000001ffffffffff\nRssAnon:\t    1234 kB\nBad:\tx kB\n"), 0o644)
	if v, ok := Field(path, "CapEff"); !ok || v != "000001ffffffffff" {
		t.Errorf("CapEff = %q, %v", v, ok)
	}
	if _, ok := Field(path, "Rss"); ok {
		t.Error("Rss is a prefix of RssAnon, not a field of this file")
	}
	if n := Bytes(path, "RssAnon"); n != 1234<<10 {
		t.Errorf("RssAnon = %d", n)
	}
	if n := Bytes(path, "Bad") + Bytes(path, "Missing") + Bytes(path+"-none", "RssAnon"); n != 0 {
		t.Errorf("malformed or missing: %d", n)
	}
}
