/* dynlib.h: a shared library opened on first use (dlopen) instead of linked, for the ones only a rare path
 * needs: libcurl and libcrypto for Hub downloads (lib/hub.c), libzip for pytorch_model.bin (lib/torch_load.c).
 * Linked, they and the ~25 libraries they pull in (TLS, Kerberos, LDAP, compression) cost every tool about
 * 20 ms of dynamic linking at each start, used or not (docs/performance.md, "Start-up").
 *
 * A user keeps a struct of function pointers declared with the library's own prototypes
 * (__typeof__(curl_easy_init) *easy_init), a table of {symbol name, offsetof} and a dynlib (DYNLIB); dynlib_open fills
 * the struct once, from the first soname that loads. Header-only, so that a fuzz target building one file
 * needs nothing else. */
#ifndef ST_DYNLIB_H
#define ST_DYNLIB_H

#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

struct dynlib_sym {
	const char *name;
	size_t offset;   /* of the function pointer in the user's struct */
};

typedef struct dynlib {
	const char *what;                 /* for messages: "libcurl (needed to download from the Hub)" */
	const char *const *sonames;       /* tried in order, NULL-terminated */
	const struct dynlib_sym *syms;
	size_t nsyms;
	void *table;                      /* the user's struct of function pointers */
	int state;                        /* 0 not tried, 1 loaded, -1 failed (msg says why) */
	char msg[512];
} dynlib;

/* A dynlib for the struct TABLE, filled from the symbol table SYMS (an array) out of the first of SONAMES. */
#define DYNLIB(WHAT, SONAMES, SYMS, TABLE) \
	{ .what = (WHAT), .sonames = (SONAMES), .syms = (SYMS), .nsyms = sizeof(SYMS) / sizeof *(SYMS), .table = &(TABLE) }

/* 0 once every symbol is in d->table; -1 with a message naming the library (and the symbol missing) in err.
 * A failure is remembered: later calls fail at once with the same message. The library stays loaded. */
static inline int dynlib_open(dynlib *d, char *err, size_t errlen)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_mutex_lock(&lock);
	if (!d->state) {
		void *h = NULL;
		const char *tried = "";
		for (const char *const *s = d->sonames; *s && !h; s++)
			h = dlopen(tried = *s, RTLD_NOW | RTLD_LOCAL);
		if (!h) {
			const char *why = dlerror();
			snprintf(d->msg, sizeof d->msg, "cannot load %s: %s", d->what, why ? why : tried);
			d->state = -1;
		} else {
			d->state = 1;
			for (size_t i = 0; i < d->nsyms; i++) {
				void *f = dlsym(h, d->syms[i].name);
				if (!f) {
					snprintf(d->msg, sizeof d->msg, "cannot load %s: it has no %s", d->what, d->syms[i].name);
					d->state = -1;
					break;
				}
				memcpy((char *)d->table + d->syms[i].offset, &f, sizeof f);
			}
		}
	}
	int ok = d->state > 0;
	pthread_mutex_unlock(&lock);
	if (!ok && err && errlen)
		snprintf(err, errlen, "%s", d->msg);
	return ok ? 0 : -1;
}

#endif
