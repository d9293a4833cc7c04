/* tap.h: a minimal Test Anything Protocol writer for the C unit tests (run by prove). */
#ifndef TAP_H
#define TAP_H
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

__attribute__((unused)) static int ok(int cond, const char *fmt, ...)
{
	va_list ap;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	if (!cond)
		tap_failed++;
	fflush(stdout);
	return cond;
}

/* |got - want| <= tol * max(1, |want|) */
__attribute__((unused)) static int near(double got, double want, double tol, const char *what)
{
	double scale = fabs(want) > 1 ? fabs(want) : 1;
	int good = fabs(got - want) <= tol * scale && !isnan(got);
	if (!ok(good, "%s", what))
		printf("#   got %.9g, want %.9g (tol %g)\n", got, want, tol);
	return good;
}

__attribute__((unused)) static void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	exit(0);
}

__attribute__((unused)) static int done_testing(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
#endif
