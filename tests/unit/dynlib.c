/* lib/dynlib.h: libraries opened on first use (libcurl, libcrypto, libzip). A library that is there gives working
 * functions; a missing library or symbol gives a message naming it, and the failure is remembered. */
#include "dynlib.h"
#include "tap.h"

#include <math.h>
#include <string.h>

static struct {
	double (*cos)(double);
	double (*sqrt)(double);
} m;
static const struct dynlib_sym m_syms[] = { { "cos", offsetof(__typeof__(m), cos) },
					    { "sqrt", offsetof(__typeof__(m), sqrt) } };

int main(void)
{
	char err[600];
	static const char *const libm_names[] = { "libst-no-such-library.so.9", "libm.so.6", NULL };
	dynlib libm = { .what = "libm (a test)", .sonames = libm_names, .syms = m_syms, .nsyms = 2, .table = &m };
	ok(dynlib_open(&libm, err, sizeof err) == 0, "libm.so.6 opens (after a soname that does not)");
	ok(m.cos && m.cos(0.0) == 1.0 && m.sqrt && m.sqrt(2.25) == 1.5, "its functions work: cos(0) = 1, sqrt(2.25) = 1.5");
	ok(dynlib_open(&libm, err, sizeof err) == 0, "a second open: still fine");

	static const char *const none[] = { "libst-no-such-library.so.9", NULL };
	struct { void (*f)(void); } t;
	static const struct dynlib_sym t_syms[] = { { "f", 0 } };
	dynlib missing = { .what = "libnothing (needed for a test)", .sonames = none, .syms = t_syms, .nsyms = 1, .table = &t };
	err[0] = 0;
	ok(dynlib_open(&missing, err, sizeof err) < 0 && strstr(err, "cannot load libnothing (needed for a test)"),
	   "a missing library: -1 and a message naming it");
	printf("# %s\n", err);
	err[0] = 0;
	ok(dynlib_open(&missing, err, sizeof err) < 0 && strstr(err, "libnothing"), "the failure is remembered");

	static const struct dynlib_sym bad_syms[] = { { "cos", 0 }, { "st_no_such_function", sizeof(void *) } };
	struct { void (*a)(void), (*b)(void); } u;
	static const char *const libm_only[] = { "libm.so.6", NULL };
	dynlib nosym = { .what = "libm", .sonames = libm_only, .syms = bad_syms, .nsyms = 2, .table = &u };
	ok(dynlib_open(&nosym, err, sizeof err) < 0 && strstr(err, "st_no_such_function"),
	   "a missing symbol: -1 and a message naming the symbol");
	printf("# %s\n", err);
	return done_testing();
}
