// clean_cpp: the C++ twin of clean.c.  No leaks at all, while libstdc++
// allocates for itself:
//   - iostreams: std::cout (stdout redirected to /dev/null first, so that
//     nothing reaches a tool sharing our stdout in exit mode), std::cerr
//     flushed, std::ostringstream/std::istringstream, std::getline;
//   - std::locale: the classic locale, a locale with a new numpunct facet
//     imbued into a stream, std::locale("C.UTF-8") if it exists;
//   - containers and strings created and destroyed, an exception thrown and
//     caught, a std::function;
//   - std::thread: 3 threads created and joined (their DTVs stay in glibc's
//     stack cache, held only through dtv-16: possible_allowed), one
//     detached and parked (on a cached stack: it reuses that DTV; its
//     std::thread state object is held by its own stack);
//   - dlopen("libm.so.6") kept open.
// Kept on purpose: a std::string* and a std::vector<int>* in plain global
// pointers (reachable).  Expected: leaked = [], possible = [].
#include "hs_truth.h"
#include <dlfcn.h>
#include <functional>
#include <iostream>
#include <locale>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

static std::string *volatile g_name;
static std::vector<int> *volatile g_numbers;
static void *volatile g_libm;
static volatile int g_ready;

struct Comma : std::numpunct<char> {
	char do_thousands_sep() const override { return ','; }
	std::string do_grouping() const override { return "\3"; }
};

static HS_NOINLINE void stream_work()
{
	if (!freopen("/dev/null", "w", stdout))
		hs_fail("freopen failed");
	std::cout << "hello " << 42 << ' ' << 3.25 << std::endl;
	std::cerr.flush();
	{
		std::ostringstream os;
		os.imbue(std::locale(std::locale::classic(), new Comma));
		for (int i = 0; i < 100; i++)
			os << i * 1000 << '\n';
		std::istringstream is(os.str());
		std::string line;
		size_t n = 0;
		while (std::getline(is, line))
			n += line.size();
		std::cout << n << '\n';
	}
	try {
		std::locale utf8("C.UTF-8");
		std::cout.imbue(utf8);
		std::cout << 1234567 << '\n';
		std::cout.imbue(std::locale::classic());
	} catch (const std::runtime_error &) {
		hs_note("std::locale(C.UTF-8) is not available;");
	}
	std::cout.flush();
}

static HS_NOINLINE void misc_work()
{
	{
		std::map<std::string, std::vector<int>> m;
		for (int i = 0; i < 50; i++)
			m["key-" + std::to_string(i)].assign(i, i);
		std::function<int(int)> f = [&m](int x) { return (int)m.size() + x; };
		if (f(1) != 51)
			hs_fail("std::function");
	}
	try {
		throw std::runtime_error(std::string(200, 'e'));
	} catch (const std::exception &e) {
		if (std::string(e.what()).size() != 200)
			hs_fail("exception");
	}
	g_name = new std::string(64, 'n');
	hs_reachable(g_name);
	hs_reachable(g_name->data());
	g_numbers = new std::vector<int>(100, 1);
	hs_reachable(g_numbers);
	hs_reachable(g_numbers->data());
	g_libm = dlopen("libm.so.6", RTLD_NOW);
	if (!g_libm)
		hs_fail("dlopen libm: %s", dlerror());
}

static void parked()
{
	hs_note_dtv_once();
	hs_scrub_stack(128 * 1024);
	hs_clear_regs();
	__atomic_add_fetch(&g_ready, 1, __ATOMIC_SEQ_CST);
	hs_park();
}

static HS_NOINLINE void thread_work()
{
	{
		std::vector<std::thread> ts;
		for (int i = 0; i < 3; i++)
			ts.emplace_back([i] {
				hs_note_dtv_once();
				std::vector<std::string> v;
				for (int k = 0; k < 100; k++)
					v.push_back(std::string(20 + i * 10 + k % 7, 'x'));
			});
		for (auto &t : ts)
			t.join();
	}
	std::thread(parked).detach();
	hs_wait_count(&g_ready, 1);
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "clean_cpp");
	hs_note("No leaks: iostreams (cout to /dev/null, ostringstream with an imbued numpunct facet, istringstream, getline), std::locale(C.UTF-8), map/vector/string/function, an exception, 3 joined std::threads and a detached parked one (DTVs, also those left in the stack cache, possible_allowed), dlopen libm kept. Reachable: a std::string and a std::vector in global pointers.");
	stream_work();
	misc_work();
	thread_work();
	hs_allow_ldso_interior();
	return hs_finish();
}
