/* Unit tests for lib/hub.c's pure parts, on hand-worked cases: model names (the library's rule for bare names,
 * the Hub's rules for repo ids, revisions) and where the cache is, from the environment as huggingface_hub
 * reads it. The network side is tests/hub.t. */
#include "hub.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static void name_is(const char *arg, const char *repo, const char *revision)
{
	hub_name n;
	memset(&n, 0, sizeof n);
	int rc = hub_parse_name(arg, &n);
	if (!ok(rc == 0 && !strcmp(n.repo, repo) && !strcmp(n.revision, revision), "%s -> %s @ %s", arg, repo, revision))
		printf("#   got rc %d, %s @ %s\n", rc, n.repo, n.revision);
}

static void not_a_name(const char *arg)
{
	hub_name n;
	ok(hub_parse_name(arg, &n) < 0, "'%s' is not a Hub name", arg);
}

static void cache_is(const char *want, const char *what)
{
	char got[4096];
	hub_cache_dir(got, sizeof got);
	if (!ok(!strcmp(got, want), "cache: %s", what))
		printf("#   got %s, want %s\n", got, want);
}

int main(void)
{
	name_is("BAAI/bge-small-en-v1.5", "BAAI/bge-small-en-v1.5", "main");
	name_is("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "main");
	name_is("all-mpnet-base-v2@v1.0", "sentence-transformers/all-mpnet-base-v2", "v1.0");
	name_is("intfloat/multilingual-e5-small@refs/pr/3", "intfloat/multilingual-e5-small", "refs/pr/3");
	name_is("org/name@0123456789abcdef0123456789abcdef01234567", "org/name",
		"0123456789abcdef0123456789abcdef01234567");
	/* organisation-less old models stay as they are, compared without case as the library does */
	name_is("bert-base-uncased", "bert-base-uncased", "main");
	name_is("XLM-RoBERTa-base", "XLM-RoBERTa-base", "main");
	name_is("roberta-base@main", "roberta-base", "main");
	name_is("a_b.c-d", "sentence-transformers/a_b.c-d", "main");
	name_is("_x/y_", "_x/y_", "main");

	not_a_name("");
	not_a_name("a/b/c");          /* a path, as the library says: more than one '/' */
	not_a_name("./model");
	not_a_name("../model");
	not_a_name("/abs/model");
	not_a_name("org/");
	not_a_name("/name");
	not_a_name("org/na--me");     /* the Hub forbids -- and .. in ids */
	not_a_name("org/na..me");
	not_a_name("-org/name");
	not_a_name("org/name.");
	not_a_name("org/name.git");
	not_a_name("a b");
	not_a_name("org\\name");
	not_a_name("name@");          /* an empty revision */
	not_a_name("name@../../x");   /* a revision that would climb out of refs/ */
	not_a_name("name@/x");
	not_a_name("name@a b");
	char longname[200];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = 0;
	not_a_name(longname);

	unsetenv("HF_HUB_CACHE");
	unsetenv("HUGGINGFACE_HUB_CACHE");
	unsetenv("HF_HOME");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/u", 1);
	cache_is("/home/u/.cache/huggingface/hub", "~/.cache/huggingface/hub by default");
	setenv("XDG_CACHE_HOME", "/x", 1);
	cache_is("/x/huggingface/hub", "$XDG_CACHE_HOME/huggingface/hub");
	setenv("HF_HOME", "/h", 1);
	cache_is("/h/hub", "$HF_HOME/hub before XDG");
	setenv("HUGGINGFACE_HUB_CACHE", "/old", 1);
	cache_is("/old", "$HUGGINGFACE_HUB_CACHE (the older name)");
	setenv("HF_HUB_CACHE", "/c", 1);
	cache_is("/c", "$HF_HUB_CACHE first");
	return done_testing();
}
