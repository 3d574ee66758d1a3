// cpp: C++ objects, so that the report's type names (from vtable symbols)
// and the usual library containers can be tested.
//   10 leaked Widget (polymorphic)                          definite
//   5 leaked ns::Gadget (a Widget in a namespace, with a short
//     std::string member that stays in its SSO buffer)       definite
//   3 leaked Box<int> (a polymorphic class template)        definite
//   2 leaked ns::inner::Deep<long, 3> (nested namespaces,
//     two template arguments)                               definite
//   leaked new std::string(100 chars)                       object definite,
//                                                           buffer indirect
//   leaked new std::vector<int>(500)                        object definite,
//                                                           buffer indirect
//   leaked new std::list<int> of 6 nodes: the object holds the sentinel
//     node, so object and nodes form one cycle              cycle_any_of
//   leaked new int[50] (trivial type: no array cookie)      definite
//   leaked new Widget[4] (array cookie: the chunk starts 8 bytes before the
//     pointer new[] returns)                                definite (chunk)
//   leaked shared_ptr cycle: two make_shared<Peer> each holding a
//     shared_ptr to the other (control block and object share a chunk;
//     each shared_ptr holds both the object's interior address and the
//     control block's start)                                cycle_any_of
//   reachable: 3 Widget and a ns::Gadget in plain global pointers, a
//     Box<int> held only by a reachable std::vector<Box<int>*>
//   possible_allowed (valgrind's default heuristics call them reachable):
//     a Widget[2] held only through the pointer new[] returned (chunk+8),
//     and a Multi held only through a pointer to its secondary base.
// Globals are plain pointers: no static destructor runs at exit.
// Counts: definite 10+5+3+2+1+1+1+1 = 24, indirect 2, cycles 2 (7 + 2
// members).
#include "hs_truth.h"
#include <list>
#include <memory>
#include <string>
#include <vector>

class Widget {
public:
	explicit Widget(int id) : id_(id) { memset(tag_, 'w', sizeof tag_); }
	Widget() : Widget(0) {}
	virtual ~Widget() {}
	virtual int area() const { return id_ * 2; }
	int id_;
	char tag_[20];
};

namespace ns {
class Gadget : public Widget {
public:
	Gadget(int id, const char *name) : Widget(id), name_(name) {}
	int area() const override { return (int)name_.size(); }
	std::string name_;
};

namespace inner {
template <class T, int N> class Deep {
public:
	Deep() { for (int i = 0; i < N; i++) v_[i] = (T)i; }
	virtual ~Deep() {}
	virtual T sum() const { T s = 0; for (int i = 0; i < N; i++) s += v_[i]; return s; }
	T v_[N];
};
} // namespace inner
} // namespace ns

template <class T> class Box {
public:
	explicit Box(T v) : v_(v) {}
	virtual ~Box() {}
	virtual T get() const { return v_; }
	T v_;
};

struct Extra {
	virtual ~Extra() {}
	virtual long extra() const { return x_; }
	long x_ = 7;
};

class Multi : public Widget, public Extra {
public:
	explicit Multi(int id) : Widget(id) {}
};

struct Peer {
	std::shared_ptr<Peer> other;
	char name[24];
};

static Widget *volatile g_widgets[3];
static ns::Gadget *volatile g_gadget;
static std::vector<Box<int> *> *volatile g_boxes;
static Widget *volatile g_array;  // pointer returned by new Widget[2]
static Extra *volatile g_extra;   // secondary-base pointer into a Multi

// Zero the bytes of an object's chunk beyond the object (malloc's slack), so
// that no stale pointer from the memory's earlier life survives there.
template <class T> static T *clean_slack(T *p)
{
	size_t n = malloc_usable_size((void *)p);
	if (n > sizeof(T))
		memset((char *)p + sizeof(T), 0, n - sizeof(T));
	return p;
}

static void *chunk_of_array(Widget *arr)
{
	// Itanium C++ ABI: new[] of a type with a non-trivial destructor stores
	// the element count in an 8-byte cookie before the first element.
	return (char *)arr - sizeof(size_t);
}

static HS_NOINLINE void build_objects()
{
	for (int i = 0; i < 10; i++) {
		Widget *w = clean_slack(new Widget(i));
		hs_definite(w, sizeof(Widget));
	}
	for (int i = 0; i < 5; i++) {
		ns::Gadget *g = clean_slack(new ns::Gadget(100 + i, "gadget"));
		if (g->name_.data() != (const char *)&g->name_ + 16)
			hs_fail("short std::string is not in its SSO buffer");
		hs_definite(g, sizeof(ns::Gadget));
	}
	for (int i = 0; i < 3; i++) {
		Box<int> *b = clean_slack(new Box<int>(200 + i));
		hs_definite(b, sizeof(Box<int>));
	}
	for (int i = 0; i < 2; i++) {
		auto *d = clean_slack(new ns::inner::Deep<long, 3>());
		hs_definite(d, sizeof *d);
	}
	for (int i = 0; i < 3; i++) {
		Widget *w = clean_slack(new Widget(300 + i));
		g_widgets[i] = w;
		hs_reachable(w);
	}
	g_gadget = clean_slack(new ns::Gadget(400, "kept"));
	hs_reachable(g_gadget);
	auto *v = clean_slack(new std::vector<Box<int> *>);
	v->reserve(4);
	hs_reachable(v);
	hs_reachable(v->data());
	Box<int> *b = clean_slack(new Box<int>(500));
	v->push_back(b);
	hs_reachable(b);
	g_boxes = v;
	v = nullptr;
	b = nullptr;
	HS_BARRIER();
}

static HS_NOINLINE void build_containers()
{
	auto *s = clean_slack(new std::string(100, 'S'));
	hs_definite(s, sizeof *s);
	hs_indirect(s->data(), s->capacity() + 1);
	s = nullptr;

	auto *v = clean_slack(new std::vector<int>(500, 7));
	hs_definite(v, sizeof *v);
	hs_indirect(v->data(), v->capacity() * sizeof(int));
	v = nullptr;

	// The list object holds the sentinel node at offset 0, so the first
	// and last nodes point back to its start: object and nodes form one
	// unreferenced cycle, and any member may represent it.
	auto *l = clean_slack(new std::list<int>);
	int g = hs_new_cycle();
	hs_cycle(l, sizeof *l, g);
	for (int i = 0; i < 6; i++)
		l->push_back(i * 11);
	if ((void *)l->end()._M_node != (void *)l || sizeof *l != sizeof(std::_List_node<int>))
		hs_fail("unexpected std::list layout");
	for (auto it = l->begin(); it != l->end(); ++it)
		hs_cycle(it._M_node, sizeof(std::_List_node<int>), g);
	l = nullptr;

	int *ints = new int[50];
	memset(ints, 0x2a, malloc_usable_size(ints));
	hs_definite(ints, 50 * sizeof(int));
	ints = nullptr;

	Widget *arr = new Widget[4];
	void *c = chunk_of_array(arr);
	if (*(size_t *)c != 4)
		hs_fail("unexpected array cookie layout");
	hs_definite(c, 4 * sizeof(Widget) + sizeof(size_t));
	arr = nullptr;
	c = nullptr;
	HS_BARRIER();
}

static HS_NOINLINE void build_cycle_and_interior()
{
	{
		auto a = std::make_shared<Peer>();
		auto b = std::make_shared<Peer>();
		memset(a->name, 'a', sizeof a->name);
		memset(b->name, 'b', sizeof b->name);
		a->other = b;
		b->other = a;
		// make_shared: one chunk holds the control block (vptr, use and
		// weak counts) and then the object.
		void *ca = (char *)a.get() - 16, *cb = (char *)b.get() - 16;
		if (malloc_usable_size(ca) < sizeof(Peer) + 16 || malloc_usable_size(cb) < sizeof(Peer) + 16)
			hs_fail("unexpected make_shared layout");
		clean_slack((char (*)[sizeof(Peer) + 16])ca);
		clean_slack((char (*)[sizeof(Peer) + 16])cb);
		int g = hs_new_cycle();
		hs_cycle(ca, sizeof(Peer) + 16, g);
		hs_cycle(cb, sizeof(Peer) + 16, g);
		ca = cb = nullptr;
	} // a and b go out of scope: each count drops to 1, nothing is freed
	{
		Widget *arr = new Widget[2];
		g_array = arr;
		hs_possible_ok(chunk_of_array(arr));
		arr = nullptr;
		Multi *m = clean_slack(new Multi(15));
		Extra *e = m;
		if ((void *)e == (void *)m)
			hs_fail("secondary base at offset 0");
		g_extra = e;
		hs_possible_ok(m);
		m = nullptr;
		e = nullptr;
	}
	HS_BARRIER();
}

int main(int argc, char **argv)
{
	hs_init(argc, argv, "cpp");
	hs_note("Definite: 10 Widget, 5 ns::Gadget (SSO string), 3 Box<int>, 2 ns::inner::Deep<long,3>, new std::string(100) (buffer indirect), new std::vector<int>(500) (buffer indirect), new int[50], new Widget[4] (chunk = pointer-8). cycle_any_of: new std::list<int> with 6 nodes (the object holds the sentinel), two make_shared<Peer> holding shared_ptrs to each other. Reachable: 3 Widget and a ns::Gadget in globals, a vector<Box<int>*> (object, buffer and its Box). possible_allowed: Widget[2] held only by the new[] pointer, a Multi held only by its secondary-base pointer.");
	build_objects();
	build_containers();
	build_cycle_and_interior();
	return hs_finish();
}
