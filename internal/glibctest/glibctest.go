// Package glibctest gives tests other glibc versions than the system's:
// Debian's libc6 and libc6-dev packages (and libc6-dbg, for cross-checks)
// of one release, downloaded from deb.debian.org at test time, cached, and
// unpacked into a sysroot that gcc can build against and whose ld.so runs
// the result.
//
// A typical test:
//
//	g := glibctest.Get(t, glibctest.Releases[0]) // skips when offline
//	bin := testprog.BuildWith(t, "plain", g.Toolchain())
//	pid, truth := testprog.StartPaused(t, bin) // runs under g's ld.so and libc
//
// Packages are pinned by version and SHA-256. When Debian has replaced a
// pinned version (its pool keeps only the current ones), apt-get, with a
// private configuration under the cache, downloads the suite's current
// version instead, verified by apt against the suite's signed index.
//
// The cache is $HEAPSIFT_CACHE, or os.UserCacheDir()/heapsift, shared by
// every test binary (a file lock serializes them). HEAPSIFT_OFFLINE=1 skips
// every test that would download; so does -short.
package glibctest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heapsift/heapsift/internal/testprog"
)

// A Release is one Debian build of glibc.
type Release struct {
	Minor   int    // glibc 2.Minor
	Suite   string // a Debian suite that carries it
	Version string // the pinned Debian package version
	Pool    string // the pool directory of the pinned version
	// SHA256 of the pinned .deb of libc6, libc6-dev and libc6-dbg.
	SHA256 map[string]string
}

// Name is the glibc version, "2.31".
func (r Release) Name() string { return fmt.Sprintf("2.%d", r.Minor) }

const (
	mirror   = "https://deb.debian.org/debian"
	security = "https://deb.debian.org/debian-security"
)

// Releases are the glibc versions Debian's mirror carries, oldest first.
// No Debian suite carries 2.42.
var Releases = []Release{
	{31, "bullseye", "2.31-13+deb11u14", security + "/pool/updates/main/g/glibc", map[string]string{
		"libc6":     "718e3ed8c92207caf5b541e7332affad4f62501cbab3f0cffbe9e6db0b89eae9",
		"libc6-dev": "7d4002192e09c3cc97f31dcc85ecd7741adbec9011abbdd14fb1790cab20bffa",
		"libc6-dbg": "55610e62c35a3d5a4f6c21984f080a398347216d4c609aeadd3518582a4488cb",
	}},
	{36, "bookworm", "2.36-9+deb12u14", mirror + "/pool/main/g/glibc", map[string]string{
		"libc6":     "ba4f88f73dbc3ae9055f3c20f4523bfdbaf1ad13ff95e258924f77d20b4fbedf",
		"libc6-dev": "0218fc2befcd784c1b0c6292c0a137ce89fad054efaa579ad083bee0f2c01aae",
		"libc6-dbg": "cf1a1e6524267ff724812813a1735b41a04213388d1bd30df9647db4300e682d",
	}},
	{41, "trixie", "2.41-12+deb13u5", mirror + "/pool/main/g/glibc", map[string]string{
		"libc6":     "b59b0625cd1a791375d40dab23a4d5d3d0641e3d0a773501becdc3725b7f99cf",
		"libc6-dev": "858f4d477cc39324f3c6582cdebcf38928fb385bb17b40518c77a7dccd296428",
		"libc6-dbg": "d382b1f72fc0089aeeea8efe7db4719a436ce65cb6ce7f096e9c799d32ead275",
	}},
	{43, "sid", "2.43-7", mirror + "/pool/main/g/glibc", map[string]string{
		"libc6":     "5c71715c51103beb4fbba9fe9f8dff604af6610dfa71c70bff342f54a7860803",
		"libc6-dev": "7095b6c9cd209aac9bb54a03edf9f3544589f553f649b71eec29968ca8ea13ce",
		"libc6-dbg": "09519387f88a6896592d6593f750f569a90cf309d110ff49d7a68ff111a56cde",
	}},
	{44, "experimental", "2.44-3", mirror + "/pool/main/g/glibc", map[string]string{
		"libc6":     "09ceffb81fdc6fd33c01e672889f7a6c41671feb52b9cf34c33879228dcd9cc2",
		"libc6-dev": "93fed5274dc89e10a9c77dc008e53052ac80517cbe543a03d8760114dbe7509f",
		"libc6-dbg": "c235062f017484482e3414e0fe5e6ca1b9f50345e23d09858f639f73a48950e6",
	}},
}

// A Package is one other Debian package a test needs (an allocator to
// preload, say), pinned like the releases.
type Package struct {
	Name, Suite, Version, Pool, SHA256 string
}

// Jemalloc is bookworm's libjemalloc2, which runs on glibc 2.36 and newer.
var Jemalloc = Package{"libjemalloc2", "bookworm", "5.3.0-1", mirror + "/pool/main/j/jemalloc",
	"a4117c23c5c8acf6c9678a6cb086f000b79476369da7efe8a78a70826956ad3d"}

// Fetch returns the directory where package p is unpacked, downloading it
// the first time. It skips t when downloads are disabled or the mirror is
// unreachable.
func Fetch(t testing.TB, p Package) string {
	t.Helper()
	if why := Skipped(); why != "" {
		t.Skip(why)
	}
	key := "pkg:" + p.Name
	mu.Lock()
	res := results[key]
	if res == nil {
		res = new(result)
		results[key] = res
	}
	mu.Unlock()
	res.once.Do(func() {
		res.dir, res.ver, res.err = unpackCached(p.Name+"_"+p.Version, func(debs string) ([]string, error) {
			deb, err := downloadDeb(p, debs)
			return []string{deb}, err
		})
	})
	var off *offline
	if errors.As(res.err, &off) {
		t.Skipf("glibctest: %s: %v", p.Name, res.err)
	}
	if res.err != nil {
		t.Fatalf("glibctest: %s: %v", p.Name, res.err)
	}
	return res.dir
}

// Glibc is an unpacked release.
type Glibc struct {
	Release
	Debian string // the Debian version unpacked (the pinned one, or its successor)
	Root   string // the sysroot: libc6 and libc6-dev unpacked, symlinks fixed
	Loader string // its ld.so, a regular file
	LibDir string // the directory of its libc.so.6
}

// Skipped reports why tests that download must not run, or "".
func Skipped() string {
	switch {
	case os.Getenv("HEAPSIFT_OFFLINE") == "1":
		return "HEAPSIFT_OFFLINE=1: not downloading Debian's glibc packages"
	case testing.Short():
		return "-short: not downloading Debian's glibc packages"
	}
	for _, tool := range []string{"dpkg-deb", "gcc"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " is not installed"
		}
	}
	return ""
}

// offline marks a failure to reach the mirror at all.
type offline struct{ err error }

func (o *offline) Error() string { return "deb.debian.org is unreachable: " + o.err.Error() }
func (o *offline) Unwrap() error { return o.err }

var (
	mu      sync.Mutex
	results = map[string]*result{}
)

type result struct {
	once sync.Once
	dir  string // unpacked tree
	ver  string
	err  error
}

// Get returns release r unpacked (libc6 and libc6-dev), downloading it into
// the cache the first time. It skips t when downloads are disabled or the
// mirror is unreachable, and fails it on any other error.
func Get(t testing.TB, r Release) *Glibc {
	t.Helper()
	dir, ver := fetch(t, r, "libc6", "libc6-dev")
	g := &Glibc{Release: r, Debian: ver, Root: dir}
	g.LibDir = filepath.Join(dir, "lib", "x86_64-linux-gnu")
	ld, err := filepath.EvalSymlinks(filepath.Join(dir, "lib64", "ld-linux-x86-64.so.2"))
	if err != nil {
		t.Fatalf("glibctest: %s: no ld.so: %v", r.Name(), err)
	}
	g.Loader = ld
	return g
}

// DebugDir returns the debug-file directory of libc6-dbg (build-id tree),
// downloading it the first time.
func (g *Glibc) DebugDir(t testing.TB) string {
	t.Helper()
	dir, _ := fetch(t, g.Release, "libc6-dbg")
	return filepath.Join(dir, "usr", "lib", "debug")
}

// fetch downloads and unpacks packages of r into one cached tree.
func fetch(t testing.TB, r Release, pkgs ...string) (string, string) {
	t.Helper()
	if why := Skipped(); why != "" {
		t.Skip(why)
	}
	key := r.Name() + "/" + strings.Join(pkgs, "+")
	mu.Lock()
	res := results[key]
	if res == nil {
		res = new(result)
		results[key] = res
	}
	mu.Unlock()
	res.once.Do(func() { res.dir, res.ver, res.err = prepare(r, pkgs) })
	var off *offline
	if errors.As(res.err, &off) {
		t.Skipf("glibctest: glibc %s: %v", r.Name(), res.err)
	}
	if res.err != nil {
		t.Fatalf("glibctest: glibc %s: %v", r.Name(), res.err)
	}
	return res.dir, res.ver
}

// CacheDir returns the directory that holds the downloads and trees.
func CacheDir() (string, error) {
	if d := os.Getenv("HEAPSIFT_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(d, "heapsift"), nil
}

// prepare returns the unpacked tree of pkgs of r, making it if needed.
func prepare(r Release, pkgs []string) (string, string, error) {
	name := "libc6_" + r.Version // a tree per pin: a new pin unpacks anew
	if len(pkgs) == 1 && pkgs[0] == "libc6-dbg" {
		name = "libc6-dbg_" + r.Version
	}
	return unpackCached(name, func(debs string) ([]string, error) {
		var out []string
		for _, p := range pkgs {
			deb, err := download(r, p, debs)
			if err != nil {
				return nil, err
			}
			out = append(out, deb)
		}
		return out, nil
	})
}

// unpackCached returns the cached tree called name, and the version of its
// first package; the first time, under an exclusive lock of the cache, it
// downloads the packages (get) and unpacks them.
func unpackCached(name string, get func(debs string) ([]string, error)) (string, string, error) {
	cache, err := CacheDir()
	if err != nil {
		return "", "", err
	}
	base := filepath.Join(cache, "glibc")
	if err := os.MkdirAll(filepath.Join(base, "debs"), 0o755); err != nil {
		return "", "", err
	}
	unlock, err := lock(filepath.Join(base, "lock"))
	if err != nil {
		return "", "", err
	}
	defer unlock()
	dir := filepath.Join(base, name)
	if ver, err := os.ReadFile(filepath.Join(dir, ".version")); err == nil {
		return dir, strings.TrimSpace(string(ver)), nil
	}
	debs, err := get(filepath.Join(base, "debs"))
	if err != nil {
		return "", "", err
	}
	ver, err := debVersion(debs[0])
	if err != nil {
		return "", "", err
	}
	tmp, err := os.MkdirTemp(base, name+".tmp-")
	if err != nil {
		return "", "", err
	}
	defer os.RemoveAll(tmp)
	for _, deb := range debs {
		if out, err := exec.Command("dpkg-deb", "-x", deb, tmp).CombinedOutput(); err != nil {
			return "", "", fmt.Errorf("dpkg-deb -x %s: %v\n%s", deb, err, out)
		}
	}
	if err := fixTree(tmp); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(tmp, ".version"), []byte(ver+"\n"), 0o644); err != nil {
		return "", "", err
	}
	os.RemoveAll(dir) // a tree left half-made by a killed run
	if err := os.Rename(tmp, dir); err != nil {
		return "", "", err
	}
	return dir, ver, nil
}

// lock takes an exclusive flock on path.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// download returns the path of package pkg of r in dir: the pinned version
// if the pool still has it, and otherwise the suite's current one.
func download(r Release, pkg, dir string) (string, error) {
	return downloadDeb(Package{Name: pkg, Suite: r.Suite, Version: r.Version, Pool: r.Pool, SHA256: r.SHA256[pkg]}, dir)
}

// downloadDeb returns the path of p's .deb in dir, downloading it: the
// pinned version if the pool still has it, and otherwise (through apt-get)
// the suite's current one.
func downloadDeb(p Package, dir string) (string, error) {
	file := fmt.Sprintf("%s_%s_amd64.deb", p.Name, p.Version)
	path := filepath.Join(dir, file)
	if ok, _ := checkSum(path, p.SHA256); ok {
		return path, nil
	}
	url := p.Pool + "/" + strings.ReplaceAll(file, "+", "%2b")
	err := httpGet(url, path, p.SHA256)
	if err == nil {
		return path, nil
	}
	var off *offline
	if errors.As(err, &off) {
		return "", err
	}
	// The pinned version is gone: ask apt for the suite's current one.
	deb, aerr := aptDownload(p.Suite, p.Name, dir)
	if aerr != nil {
		return "", fmt.Errorf("%v; and apt-get: %v", err, aerr)
	}
	return deb, nil
}

func checkSum(path, want string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, err
	}
	return hex.EncodeToString(h.Sum(nil)) == want, nil
}

var client = &http.Client{Timeout: 5 * time.Minute}

// httpGet downloads url to path, checking its SHA-256.
func httpGet(url, path, sum string) error {
	resp, err := client.Get(url)
	if err != nil {
		var dns *net.DNSError
		var op *net.OpError
		if errors.As(err, &dns) || errors.As(err, &op) || errors.Is(err, context.DeadlineExceeded) {
			return &offline{err}
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	tmp := path + ".part"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), resp.Body)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != sum {
		os.Remove(tmp)
		return fmt.Errorf("GET %s: SHA-256 %s, want %s", url, got, sum)
	}
	return os.Rename(tmp, path)
}

// aptDownload has apt-get fetch the current version of pkg in suite into
// dir, with a private apt configuration (sources, lists, no dpkg status)
// under dir, and returns the .deb's path.
func aptDownload(suite, pkg, dir string) (string, error) {
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", err
	}
	keyring := "/usr/share/keyrings/debian-archive-keyring.gpg"
	if _, err := os.Stat(keyring); err != nil {
		return "", fmt.Errorf("no Debian archive keyring: %v", err)
	}
	root := filepath.Join(dir, "apt-"+suite)
	for _, d := range []string{"etc/apt/sources.list.d", "etc/apt/preferences.d", "var/lib/apt/lists/partial", "var/cache/apt/archives/partial", "var/lib/dpkg"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return "", err
		}
	}
	sources := fmt.Sprintf("deb [signed-by=%s] %s %s main\n", keyring, mirror, suite)
	if suite == "bullseye" || suite == "bookworm" || suite == "trixie" {
		sources += fmt.Sprintf("deb [signed-by=%s] %s %s-security main\n", keyring, security, suite)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(root, "var/lib/dpkg/status"), nil, 0o644); err != nil {
		return "", err
	}
	opts := []string{"-q", "-o", "Dir=" + root, "-o", "Dir::State::status=" + filepath.Join(root, "var/lib/dpkg/status"),
		"-o", "APT::Architecture=amd64", "-o", "Acquire::Languages=none",
		"-o", "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=false",
		"-o", "Acquire::IndexTargets::deb::DEP-11-icons-small::DefaultEnabled=false",
		"-o", "Debug::NoLocking=1"}
	stamp := filepath.Join(root, "updated")
	if st, err := os.Stat(stamp); err != nil || time.Since(st.ModTime()) > 24*time.Hour {
		if out, err := exec.Command("apt-get", append(opts, "update")...).CombinedOutput(); err != nil {
			return "", fmt.Errorf("apt-get update: %v\n%s", err, out)
		}
		os.WriteFile(stamp, nil, 0o644)
	}
	before, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	cmd := exec.Command("apt-get", append(opts, "download", pkg)...) // the newest, security updates included
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s (%s): %v\n%s", pkg, suite, err, out)
	}
	after, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	seen := map[string]bool{}
	for _, p := range before {
		seen[p] = true
	}
	for _, p := range after {
		if !seen[p] {
			return p, nil
		}
	}
	return "", fmt.Errorf("apt-get download %s (%s) left no new .deb in %s", pkg, suite, dir)
}

// debVersion reads the Version field of a .deb.
func debVersion(deb string) (string, error) {
	out, err := exec.Command("dpkg-deb", "-f", deb, "Version").Output()
	if err != nil {
		return "", fmt.Errorf("dpkg-deb -f %s: %v", deb, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// fixTree makes an unpacked tree usable as a sysroot: the merged-/usr
// links (lib -> usr/lib) that base-files would make, and every absolute
// symlink pointed inside the tree, relative, so that nothing resolves to
// the host's own libc.
func fixTree(root string) error {
	for _, d := range []string{"lib", "lib64"} {
		if _, err := os.Lstat(filepath.Join(root, d)); os.IsNotExist(err) {
			if _, err := os.Stat(filepath.Join(root, "usr", d)); err == nil {
				if err := os.Symlink(filepath.Join("usr", d), filepath.Join(root, d)); err != nil {
					return err
				}
			}
		}
	}
	return filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Mode()&os.ModeSymlink == 0 {
			return err
		}
		target, err := os.Readlink(p)
		if err != nil || !filepath.IsAbs(target) {
			return err
		}
		rel, err := filepath.Rel(filepath.Dir(p), filepath.Join(root, target))
		if err != nil {
			return err
		}
		if err := os.Remove(p); err != nil {
			return err
		}
		return os.Symlink(rel, p)
	})
}

// CFlags returns the gcc flags that compile and link a program against g
// and make it run under g's ld.so and libraries: g's headers (the host's
// kernel headers after them), crt files, libc.so and libc_nonshared.a, the
// loader's path, and an RPATH (not RUNPATH, so that it also serves the
// dependencies of libraries such as libstdc++).
func (g *Glibc) CFlags() []string {
	usrLib := filepath.Join(g.Root, "usr", "lib", "x86_64-linux-gnu")
	return []string{
		"--sysroot=" + g.Root,
		"-B" + usrLib + "/",
		"-L" + usrLib, "-L" + g.LibDir,
		"-idirafter", "/usr/include/x86_64-linux-gnu", "-idirafter", "/usr/include",
		"-Wl,--dynamic-linker=" + g.Loader,
		"-Wl,-rpath," + g.LibDir,
		"-Wl,--disable-new-dtags",
	}
}

// Toolchain returns the testprog toolchain that builds fixtures against g.
// C++ fixtures need the host's libstdc++, which needs the host's glibc or
// a newer one.
func (g *Glibc) Toolchain() testprog.Toolchain {
	tc := testprog.Toolchain{Name: "glibc-" + g.Name(), Flags: g.CFlags()}
	if g.Minor < HostMinor() {
		tc.NoCXX = fmt.Sprintf("C++ fixtures need the host's libstdc++, which needs glibc 2.%d or newer, not %s", HostMinor(), g.Name())
	}
	return tc
}

// HostMinor is the minor version of the system's glibc (gnu_get_libc_version
// through getconf), or 99 when unknown.
func HostMinor() int {
	out, err := exec.Command("getconf", "GNU_LIBC_VERSION").Output()
	var minor int
	if err != nil {
		return 99
	}
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "glibc 2.%d", &minor); err != nil {
		return 99
	}
	return minor
}
