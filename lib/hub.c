/* hub.c: resolving model names to snapshots of the Hugging Face Hub cache (lib/hub.h, docs/hub.md).
 *
 * The protocol and the cache layout are huggingface_hub's:
 *   GET  {endpoint}/api/models/{repo}/revision/{rev}   -> {"sha": commit, "siblings": [{"rfilename": ...}]}
 *   HEAD {endpoint}/{repo}/resolve/{commit}/{file}     -> X-Repo-Commit, ETag or X-Linked-Etag (sha256 of an
 *        LFS file), X-Linked-Size; relative redirects (a renamed repo) are followed, an absolute one (a CDN)
 *        is where the file is then fetched, without the token
 *   {cache}/models--{org}--{name}/blobs/{etag}                 the files, by ETag
 *                                  /snapshots/{commit}/{file}  relative symlinks into blobs
 *                                  /refs/{revision}            the commit a branch or tag pointed to
 *   {cache}/.locks/models--{org}--{name}/{etag}.lock            one download of a blob at a time (flock)
 * A blob is written as {etag}.incomplete (continued with a Range request when one is there) and renamed when
 * complete and, for LFS files, when its sha256 is the ETag. */
#define _GNU_SOURCE
#include "hub.h"
#include "errbuf.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dynlib.h"
#include "st.h"

/* Paths here are built from the cache folder (checked to be under 2048 bytes), a repo id (< 160), a revision
 * (< 256), a commit, an ETag (< 128) and a file name (< 1024): they fit PATH_MAX, which gcc cannot see. */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define DEFAULT_ENDPOINT "https://huggingface.co"

/* libcurl and libcrypto are opened when a download starts (lib/dynlib.h), not linked: every tool resolves its
 * model here, and linking them cost each start ~20 ms, downloads or not. The prototypes are the headers'. */
static struct {
	__typeof__(curl_global_init) *global_init;
	__typeof__(curl_easy_init) *easy_init;
	__typeof__(curl_easy_reset) *easy_reset;
	__typeof__(curl_easy_setopt) *easy_setopt;
	__typeof__(curl_easy_perform) *easy_perform;
	__typeof__(curl_easy_getinfo) *easy_getinfo;
	__typeof__(curl_easy_strerror) *easy_strerror;
	__typeof__(curl_easy_cleanup) *easy_cleanup;
	__typeof__(curl_slist_append) *slist_append;
	__typeof__(curl_slist_free_all) *slist_free_all;
} lc;
#define LC(f) { "curl_" #f, offsetof(__typeof__(lc), f) }
static const struct dynlib_sym lc_syms[] = {
	LC(global_init), LC(easy_init), LC(easy_reset), LC(easy_setopt), LC(easy_perform), LC(easy_getinfo),
	LC(easy_strerror), LC(easy_cleanup), LC(slist_append), LC(slist_free_all),
};
static const char *const lc_names[] = { "libcurl.so.4", "libcurl-gnutls.so.4", "libcurl.so", NULL };
static dynlib lc_lib = DYNLIB("libcurl (Hub downloads need it)", lc_names, lc_syms, lc);

static struct {
	__typeof__(EVP_MD_CTX_new) *MD_CTX_new;
	__typeof__(EVP_MD_CTX_free) *MD_CTX_free;
	__typeof__(EVP_sha256) *sha256;
	__typeof__(EVP_DigestInit_ex) *DigestInit_ex;
	__typeof__(EVP_DigestUpdate) *DigestUpdate;
	__typeof__(EVP_DigestFinal_ex) *DigestFinal_ex;
} ossl;
#define OSSL(f) { "EVP_" #f, offsetof(__typeof__(ossl), f) }
static const struct dynlib_sym ossl_syms[] = {
	OSSL(MD_CTX_new), OSSL(MD_CTX_free), OSSL(sha256), OSSL(DigestInit_ex), OSSL(DigestUpdate), OSSL(DigestFinal_ex),
};
static const char *const ossl_names[] = { "libcrypto.so.3", "libcrypto.so", NULL };
static dynlib ossl_lib = DYNLIB("libcrypto (the sha256 of Hub downloads)", ossl_names, ossl_syms, ossl);
#define DEFAULT_ORG "sentence-transformers"

/* Models from before organisations on the Hub: a bare name of these stays as it is (the library's list). */
static const char *const canonical_models[] = {
	"albert-base-v1", "albert-base-v2", "albert-large-v1", "albert-large-v2", "albert-xlarge-v1",
	"albert-xlarge-v2", "albert-xxlarge-v1", "albert-xxlarge-v2", "bert-base-cased-finetuned-mrpc",
	"bert-base-cased", "bert-base-chinese", "bert-base-german-cased", "bert-base-german-dbmdz-cased",
	"bert-base-german-dbmdz-uncased", "bert-base-multilingual-cased", "bert-base-multilingual-uncased",
	"bert-base-uncased", "bert-large-cased-whole-word-masking-finetuned-squad",
	"bert-large-cased-whole-word-masking", "bert-large-cased",
	"bert-large-uncased-whole-word-masking-finetuned-squad", "bert-large-uncased-whole-word-masking",
	"bert-large-uncased", "camembert-base", "ctrl", "distilbert-base-cased-distilled-squad",
	"distilbert-base-cased", "distilbert-base-german-cased", "distilbert-base-multilingual-cased",
	"distilbert-base-uncased-distilled-squad", "distilbert-base-uncased-finetuned-sst-2-english",
	"distilbert-base-uncased", "distilgpt2", "distilroberta-base", "gpt2-large", "gpt2-medium", "gpt2-xl",
	"gpt2", "openai-gpt", "roberta-base-openai-detector", "roberta-base", "roberta-large-mnli",
	"roberta-large-openai-detector", "roberta-large", "t5-11b", "t5-3b", "t5-base", "t5-large", "t5-small",
	"transfo-xl-wt103", "xlm-clm-ende-1024", "xlm-clm-enfr-1024", "xlm-mlm-100-1280", "xlm-mlm-17-1280",
	"xlm-mlm-en-2048", "xlm-mlm-ende-1024", "xlm-mlm-enfr-1024", "xlm-mlm-enro-1024",
	"xlm-mlm-tlm-xnli15-1024", "xlm-mlm-xnli15-1024", "xlm-roberta-base",
	"xlm-roberta-large-finetuned-conll02-dutch", "xlm-roberta-large-finetuned-conll02-spanish",
	"xlm-roberta-large-finetuned-conll03-english", "xlm-roberta-large-finetuned-conll03-german",
	"xlm-roberta-large", "xlnet-base-cased", "xlnet-large-cased",
};

/* ---- names ---- */

/* One part of a repo id: [A-Za-z0-9_.-]+, starting and ending with a letter or digit or '_' (the Hub's rule,
 * which also forbids "--" and ".."). */
static int valid_part(const char *s, size_t n)
{
	if (n == 0 || n > 96)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
			return 0;
	if (!isalnum((unsigned char)s[0]) && s[0] != '_')
		return 0;
	if (!isalnum((unsigned char)s[n - 1]) && s[n - 1] != '_')
		return 0;
	for (size_t i = 0; i + 1 < n; i++)
		if ((s[i] == '-' && s[i + 1] == '-') || (s[i] == '.' && s[i + 1] == '.'))
			return 0;
	return 1;
}

int hub_parse_name(const char *arg, hub_name *out)
{
	const char *at = strchr(arg, '@');
	size_t n = at ? (size_t)(at - arg) : strlen(arg);
	const char *rev = at ? at + 1 : "main";
	if (n == 0 || n >= sizeof out->repo - sizeof DEFAULT_ORG - 1)
		return -1;
	const char *slash = memchr(arg, '/', n);
	if (slash) {
		if (!valid_part(arg, slash - arg) || !valid_part(slash + 1, n - (slash + 1 - arg)))
			return -1;
		memcpy(out->repo, arg, n);
		out->repo[n] = 0;
	} else {
		if (!valid_part(arg, n))
			return -1;
		int canonical = 0;
		for (size_t i = 0; i < sizeof canonical_models / sizeof *canonical_models; i++)
			if (strlen(canonical_models[i]) == n && !strncasecmp(canonical_models[i], arg, n))
				canonical = 1;
		snprintf(out->repo, sizeof out->repo, "%s%s%.*s", canonical ? "" : DEFAULT_ORG,
			 canonical ? "" : "/", (int)n, arg);
	}
	if (n >= 4 && !strncmp(arg + n - 4, ".git", 4))
		return -1;
	/* a revision is a branch, a tag or a commit; it becomes a path under refs/, so nothing that climbs */
	size_t rl = strlen(rev);
	if (rl == 0 || rl >= sizeof out->revision || rev[0] == '/' || rev[rl - 1] == '/' || strstr(rev, "..") ||
	    strstr(rev, "//"))
		return -1;
	for (size_t i = 0; i < rl; i++)
		if ((unsigned char)rev[i] <= ' ' || strchr("\\~^:?*[", rev[i]))
			return -1;
	memcpy(out->revision, rev, rl + 1);
	return 0;
}

/* ---- the environment ---- */

static void hf_home(char *out, size_t outlen)
{
	const char *v = getenv("HF_HOME"), *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	if (v && *v)
		snprintf(out, outlen, "%s", v);
	else if (xdg && *xdg)
		snprintf(out, outlen, "%s/huggingface", xdg);
	else
		snprintf(out, outlen, "%s/.cache/huggingface", home && *home ? home : ".");
}

void hub_cache_dir(char *out, size_t outlen)
{
	const char *v = getenv("HF_HUB_CACHE");
	if (!v || !*v)
		v = getenv("HUGGINGFACE_HUB_CACHE");   /* the older name */
	if (v && *v) {
		snprintf(out, outlen, "%s", v);
		return;
	}
	char home[PATH_MAX];
	hf_home(home, sizeof home);
	snprintf(out, outlen, "%s/hub", home);
}

static void endpoint(char *out, size_t outlen)
{
	const char *v = getenv("HF_ENDPOINT");
	snprintf(out, outlen, "%s", v && *v ? v : DEFAULT_ENDPOINT);
	size_t n = strlen(out);
	while (n > 0 && out[n - 1] == '/')
		out[--n] = 0;
}

static int env_true(const char *name)
{
	const char *v = getenv(name);
	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

/* The token: $HF_TOKEN, else the file $HF_TOKEN_PATH or $HF_HOME/token (what `huggingface-cli login` writes).
 * NULL when there is none. Kept in memory only, for the Authorization header. */
static char *read_token(void)
{
	const char *v = getenv("HF_TOKEN");
	if (!v || !*v)
		v = getenv("HUGGING_FACE_HUB_TOKEN");
	char *tok = NULL;
	if (v && *v)
		tok = xstrdup(v);
	else {
		char path[PATH_MAX];
		const char *p = getenv("HF_TOKEN_PATH");
		if (p && *p)
			snprintf(path, sizeof path, "%s", p);
		else {
			char home[PATH_MAX];
			hf_home(home, sizeof home);
			snprintf(path, sizeof path, "%s/token", home);
		}
		size_t len;
		tok = st_read_file(path, &len);
	}
	if (!tok)
		return NULL;
	/* surrounding white space (a file's newline) is not part of it; nothing else may be, for a header */
	char *s = tok;
	while (isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	memmove(tok, s, n);
	tok[n] = 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)tok[i] < 0x21 || tok[i] == 0x7f)
			n = 0;
	if (n == 0) {
		free(tok);
		return NULL;
	}
	return tok;
}

/* ---- files ---- */

static int mkdirs(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(buf, 0777) < 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(buf, 0777) < 0 && errno != EEXIST ? -1 : 0;
}

static int mkdirs_parent(const char *path)
{
	char buf[PATH_MAX];
	snprintf(buf, sizeof buf, "%s", path);
	char *slash = strrchr(buf, '/');
	if (!slash || slash == buf)
		return 0;
	*slash = 0;
	return mkdirs(buf);
}

static int exists(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0;
}

static int is_commit(const char *s)
{
	if (strlen(s) != 40)
		return 0;
	for (int i = 0; i < 40; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return 0;
	return 1;
}

static int is_sha256(const char *s)
{
	if (strlen(s) != 64)
		return 0;
	for (int i = 0; i < 64; i++)
		if (!isxdigit((unsigned char)s[i]))
			return 0;
	return 1;
}

/* A snapshot that a model can be read from: it has modules.json or config.json. */
static int usable_snapshot(const char *dir)
{
	char p[PATH_MAX];
	snprintf(p, sizeof p, "%s/modules.json", dir);
	if (exists(p))
		return 1;
	snprintf(p, sizeof p, "%s/config.json", dir);
	return exists(p);
}

/* The cached snapshot of (storage, revision): the revision itself when it is a commit, else refs/{revision}.
 * A malloc'd path or NULL. */
static char *cached_snapshot(const char *storage, const char *revision)
{
	char commit[64] = "", path[PATH_MAX];
	if (is_commit(revision))
		snprintf(commit, sizeof commit, "%s", revision);
	else {
		snprintf(path, sizeof path, "%s/refs/%s", storage, revision);
		size_t len;
		char *text = st_read_file(path, &len);
		if (!text)
			return NULL;
		snprintf(commit, sizeof commit, "%.*s", (int)strcspn(text, " \t\r\n"), text);
		free(text);
		if (!is_commit(commit))
			return NULL;
	}
	snprintf(path, sizeof path, "%s/snapshots/%s", storage, commit);
	return usable_snapshot(path) ? xstrdup(path) : NULL;
}

/* ---- HTTP ---- */

enum { NET_OK, NET_DOWN, NET_NOTFOUND, NET_AUTH, NET_FAIL };

typedef struct response {
	long status;
	char location[4096];      /* the raw Location header of the last response */
	char commit[64], etag[256], linked_etag[256], error_code[64], error_message[256];
	long long linked_size, content_length;
	/* a body kept in memory (api calls) */
	char *body;
	size_t len, cap;
	/* or written to a file (downloads) */
	int fd;
	CURL *curl;
	int wrote_error;          /* a body that was not the file's (an error page) */
	/* progress */
	const char *label;
	long long base, expected;
	double last_draw;
} response;

static void header_value(const char *line, size_t n, const char *name, char *out, size_t outlen)
{
	size_t k = strlen(name);
	if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
		return;
	const char *v = line + k + 1;
	size_t m = n - k - 1;
	while (m > 0 && (*v == ' ' || *v == '\t'))
		v++, m--;
	while (m > 0 && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' '))
		m--;
	if (m >= outlen)
		m = outlen - 1;
	memcpy(out, v, m);
	out[m] = 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *data)
{
	response *r = data;
	size_t n = size * nitems;
	if (n >= 5 && !strncmp(line, "HTTP/", 5)) {   /* a new response (after a redirect): forget the last one's */
		r->location[0] = r->commit[0] = r->etag[0] = r->linked_etag[0] = 0;
		r->error_code[0] = r->error_message[0] = 0;
		r->linked_size = r->content_length = -1;
		return n;
	}
	char num[32] = "";
	header_value(line, n, "Location", r->location, sizeof r->location);
	header_value(line, n, "X-Repo-Commit", r->commit, sizeof r->commit);
	header_value(line, n, "ETag", r->etag, sizeof r->etag);
	header_value(line, n, "X-Linked-Etag", r->linked_etag, sizeof r->linked_etag);
	header_value(line, n, "X-Error-Code", r->error_code, sizeof r->error_code);
	header_value(line, n, "X-Error-Message", r->error_message, sizeof r->error_message);
	header_value(line, n, "X-Linked-Size", num, sizeof num);
	if (*num)
		r->linked_size = atoll(num);
	*num = 0;
	header_value(line, n, "Content-Length", num, sizeof num);
	if (*num)
		r->content_length = atoll(num);
	return n;
}

static size_t on_body_memory(char *data, size_t size, size_t nmemb, void *p)
{
	response *r = p;
	size_t n = size * nmemb;
	if (r->len + n > (64u << 20))   /* an API answer, not a model file */
		return 0;
	if (r->len + n + 1 > r->cap) {
		r->cap = (r->len + n + 1) * 2;
		r->body = xrealloc(r->body, r->cap);
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	r->body[r->len] = 0;
	return n;
}

static size_t on_body_file(char *data, size_t size, size_t nmemb, void *p)
{
	response *r = p;
	size_t n = size * nmemb;
	long status = 0;
	lc.easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200 && status != 206) {   /* an error page is not the file */
		r->wrote_error = 1;
		return n;
	}
	if (status == 200 && r->base > 0) {     /* the server ignored our Range: start over */
		if (ftruncate(r->fd, 0) < 0 || lseek(r->fd, 0, SEEK_SET) < 0)
			return 0;
		r->base = 0;
	}
	for (size_t done = 0; done < n;) {
		ssize_t w = write(r->fd, data + done, n - done);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		done += w;
	}
	return n;
}

static int on_progress(void *p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	response *r = p;
	double now = st_now();
	if (now - r->last_draw < 0.2)
		return 0;
	r->last_draw = now;
	long long total = r->expected > 0 ? r->expected : r->base + dltotal, got = r->base + dlnow;
	if (total > 0)
		fprintf(stderr, "\r%s: %s %3d%% %.1f/%.1f MB\033[K", st_prog, r->label, (int)(100.0 * got / total),
			got / 1e6, total / 1e6);
	else
		fprintf(stderr, "\r%s: %s %.1f MB\033[K", st_prog, r->label, got / 1e6);
	return 0;
}

static long timeout_env(const char *name, long dflt)
{
	const char *v = getenv(name);
	long t = v ? atol(v) : 0;
	return t > 0 ? t : dflt;
}

typedef struct hub_ctx {
	char endpoint[1024], cache[PATH_MAX], storage[PATH_MAX];
	char *token;
	const char *arg;
	hub_name name;
	CURL *curl;
	char curl_error[CURL_ERROR_SIZE];
} hub_ctx;

/* One request. method: "GET" or "HEAD"; auth: send the token; follow: follow redirects. A download
 * (r->fd >= 0) continues from r->base with a Range header. Returns NET_* and fills r. */
static int request(hub_ctx *h, const char *method, const char *url, int auth, int follow, response *r)
{
	CURL *c = h->curl;
	lc.easy_reset(c);
	r->curl = c;
	r->status = 0;
	r->linked_size = r->content_length = -1;
	r->location[0] = r->commit[0] = r->etag[0] = r->linked_etag[0] = r->error_code[0] = r->error_message[0] = 0;
	h->curl_error[0] = 0;
	struct curl_slist *headers = NULL;
	char line[8192];
	if (auth && h->token) {
		snprintf(line, sizeof line, "Authorization: Bearer %s", h->token);
		headers = lc.slist_append(headers, line);
		memset(line, 0, sizeof line);
	}
	if (r->fd >= 0 && r->base > 0) {
		snprintf(line, sizeof line, "Range: bytes=%lld-", r->base);
		headers = lc.slist_append(headers, line);
	}
	lc.easy_setopt(c, CURLOPT_URL, url);
	lc.easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	lc.easy_setopt(c, CURLOPT_USERAGENT, "st (sentence-transformers in C); hf_hub-compatible");
	lc.easy_setopt(c, CURLOPT_ERRORBUFFER, h->curl_error);
	lc.easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	lc.easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	lc.easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	lc.easy_setopt(c, CURLOPT_FOLLOWLOCATION, (long)follow);
	lc.easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	lc.easy_setopt(c, CURLOPT_CONNECTTIMEOUT, timeout_env("HF_HUB_ETAG_TIMEOUT", 10));
	/* a stalled transfer ends; a slow one does not */
	lc.easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	lc.easy_setopt(c, CURLOPT_LOW_SPEED_TIME, timeout_env("HF_HUB_DOWNLOAD_TIMEOUT", 60));
	lc.easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	lc.easy_setopt(c, CURLOPT_HEADERDATA, r);
	if (!strcmp(method, "HEAD"))
		lc.easy_setopt(c, CURLOPT_NOBODY, 1L);
	if (r->fd >= 0) {
		lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body_file);
		if (r->label) {
			lc.easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
			lc.easy_setopt(c, CURLOPT_XFERINFODATA, r);
			lc.easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		}
	} else
		lc.easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body_memory);
	lc.easy_setopt(c, CURLOPT_WRITEDATA, r);
	CURLcode rc = lc.easy_perform(c);
	lc.easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	for (struct curl_slist *s = headers; s; s = s->next)   /* the token does not stay in freed memory */
		memset(s->data, 0, strlen(s->data));
	lc.slist_free_all(headers);
	if (r->label && r->last_draw > 0)
		fprintf(stderr, "\r\033[K");
	lc.easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	if (rc != CURLE_OK) {
		if (!h->curl_error[0])
			snprintf(h->curl_error, sizeof h->curl_error, "%s", lc.easy_strerror(rc));
		return rc == CURLE_WRITE_ERROR ? NET_FAIL : NET_DOWN;
	}
	if (!strcmp(r->error_code, "RepoNotFound") || !strcmp(r->error_code, "RevisionNotFound") ||
	    !strcmp(r->error_code, "EntryNotFound"))
		return NET_NOTFOUND;
	if (!strcmp(r->error_code, "GatedRepo") || r->status == 401 || r->status == 403)
		return NET_AUTH;
	if (r->status == 404)
		return NET_NOTFOUND;
	if (r->status >= 500)
		return NET_DOWN;   /* the Hub is down: as good as no network (the cache may serve) */
	if (r->status >= 400)
		return NET_FAIL;
	return NET_OK;
}

/* The message for a failed request; returns the exit code. */
static int request_error(hub_ctx *h, int net, const response *r, const char *what, char *err, size_t errlen)
{
	switch (net) {
	case NET_NOTFOUND:
		if (!strcmp(r->error_code, "RevisionNotFound"))
			errbuf_set(err, errlen, "%s: no revision %s of %s on the Hub (%s)", h->arg, h->name.revision,
			       h->name.repo, h->endpoint);
		else if (!strcmp(r->error_code, "EntryNotFound"))
			errbuf_set(err, errlen, "%s: %s is not in %s on the Hub (%s)", h->arg, what, h->name.repo,
			       h->endpoint);
		else
			errbuf_set(err, errlen, "%s: no such model directory, and no model %s on the Hub (%s)%s", h->arg,
			       h->name.repo, h->endpoint,
			       h->token ? "" : " (a private model needs a token: HF_TOKEN, docs/hub.md)");
		return EX_NOINPUT;
	case NET_AUTH:
		if (!strcmp(r->error_code, "GatedRepo"))
			errbuf_set(err, errlen, "%s: %s is gated: accept its conditions on the Hub, then give a token of that "
			       "account (HF_TOKEN or the file $HF_HOME/token; docs/hub.md)", h->arg, h->name.repo);
		else if (h->token)
			errbuf_set(err, errlen, "%s: the Hub (%s) refused the token given for %s (HTTP %ld): it has no access "
			       "to this model", h->arg, h->endpoint, h->name.repo, r->status);
		else
			errbuf_set(err, errlen, "%s: the Hub (%s) wants a token for %s (HTTP %ld: private or gated): set "
			       "HF_TOKEN or write the token to $HF_HOME/token (docs/hub.md)", h->arg, h->endpoint,
			       h->name.repo, r->status);
		return EX_NOINPUT;
	case NET_DOWN:
		if (r->status >= 500)
			errbuf_set(err, errlen, "%s: the Hub (%s) answered HTTP %ld for %s", h->arg, h->endpoint, r->status,
			       what);
		else
			errbuf_set(err, errlen, "%s: cannot reach the Hub (%s: %s) for %s", h->arg, h->endpoint, h->curl_error,
			       what);
		return EX_IOERR;
	default:
		if (r->status >= 400)
			errbuf_set(err, errlen, "%s: the Hub (%s) answered HTTP %ld for %s%s%s", h->arg, h->endpoint,
			       r->status, what, r->error_message[0] ? ": " : "", r->error_message);
		else
			errbuf_set(err, errlen, "%s: downloading %s failed (%s)", h->arg, what,
			       h->curl_error[0] ? h->curl_error : strerror(errno));
		return EX_IOERR;
	}
}

/* Percent-encodes s into out; '/' stays when keep_slash (file paths), not in a revision. */
static void url_quote(const char *s, int keep_slash, char *out, size_t outlen)
{
	size_t o = 0;
	for (; *s && o + 4 < outlen; s++) {
		unsigned char ch = *s;
		if (isalnum(ch) || strchr("-._~", ch) || (keep_slash && ch == '/'))
			out[o++] = ch;
		else
			o += snprintf(out + o, outlen - o, "%%%02X", ch);
	}
	out[o] = 0;
}

/* ---- which files a sentence-transformers model needs ---- */

static int wanted_base(const char *base)
{
	static const char *const names[] = {
		"modules.json", "config_sentence_transformers.json", "sentence_bert_config.json", "config.json",
		"README.md", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
		"vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "spiece.model", "tokenizer.model",
		"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json",
	};
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (!strcmp(base, names[i]))
			return 1;
	return !fnmatch("config*.json", base, 0) || !fnmatch("model-*-of-*.safetensors", base, 0) ||
	       !fnmatch("pytorch_model-*-of-*.bin", base, 0);
}

/* A module folder: "1_Pooling", "2_Dense", "0_Transformer", or one that modules.json names. */
static int wanted_dir(const char *dir, size_t n, json_t *modules)
{
	if (n == 0)
		return 1;
	size_t i = 0;
	while (i < n && isdigit((unsigned char)dir[i]))
		i++;
	if (i > 0 && i < n - 1 && dir[i] == '_') {
		size_t j = i + 1;
		while (j < n && isalnum((unsigned char)dir[j]))
			j++;
		if (j == n)
			return 1;
	}
	size_t k;
	json_t *mod;
	json_array_foreach(modules, k, mod) {
		const char *p = json_string_value(json_object_get(mod, "path"));
		if (p && strlen(p) == n && !strncmp(p, dir, n))
			return 1;
	}
	return 0;
}

static int weights_file(const char *base, int safetensors)
{
	return safetensors ? !strncmp(base, "model.safetensors", 17) || !fnmatch("model-*-of-*.safetensors", base, 0)
			   : !strncmp(base, "pytorch_model", 13);
}

/* From the repo's file list, the ones to download: wanted names in wanted folders, and in each folder the
 * safetensors weights when there are any, else the pytorch_model.bin ones (as transformers prefers). */
static size_t select_files(json_t *siblings, json_t *modules, const char **out)
{
	size_t n = 0, i;
	json_t *s;
	json_array_foreach(siblings, i, s) {
		const char *f = json_string_value(json_object_get(s, "rfilename"));
		if (!f || !*f || strlen(f) >= 1024 || f[0] == '/' || strstr(f, "..") || strstr(f, "//") || strchr(f, '\\'))
			continue;
		const char *slash = strrchr(f, '/');
		const char *base = slash ? slash + 1 : f;
		size_t dirlen = slash ? (size_t)(slash - f) : 0;
		if (memchr(f, '/', dirlen))   /* two levels deep: onnx/..., openvino/... are one level; none needed */
			continue;
		if (!wanted_base(base) || !wanted_dir(f, dirlen, modules))
			continue;
		out[n++] = f;
	}
	/* drop .bin weights from a folder that has safetensors ones */
	size_t kept = 0;
	for (i = 0; i < n; i++) {
		const char *slash = strrchr(out[i], '/');
		const char *base = slash ? slash + 1 : out[i];
		size_t dirlen = slash ? (size_t)(slash - out[i]) : 0;
		int drop = 0;
		if (weights_file(base, 0))
			for (size_t j = 0; j < n; j++) {
				const char *sl = strrchr(out[j], '/');
				size_t dl = sl ? (size_t)(sl - out[j]) : 0;
				if (dl == dirlen && !strncmp(out[j], out[i], dl) && weights_file(sl ? sl + 1 : out[j], 1))
					drop = 1;
			}
		if (!drop)
			out[kept++] = out[i];
	}
	return kept;
}

/* ---- one file ---- */

/* sha256 of a file as lowercase hex; 0, or -1 with errno. */
static int file_sha256(const char *path, char hex[65])
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	EVP_MD_CTX *ctx = ossl.MD_CTX_new();
	ossl.DigestInit_ex(ctx, ossl.sha256(), NULL);
	static unsigned char buf[1 << 16];
	ssize_t got;
	while ((got = read(fd, buf, sizeof buf)) > 0)
		ossl.DigestUpdate(ctx, buf, got);
	int saved = errno;
	close(fd);
	unsigned char md[32];
	unsigned int mdlen = 0;
	ossl.DigestFinal_ex(ctx, md, &mdlen);
	ossl.MD_CTX_free(ctx);
	if (got < 0) {
		errno = saved;
		return -1;
	}
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return 0;
}

/* "W/\"abc\"" -> "abc" (huggingface_hub's normalisation) */
static void normalize_etag(const char *in, char *out, size_t outlen)
{
	if (!strncmp(in, "W/", 2))
		in += 2;
	size_t n = strlen(in);
	if (n >= 2 && in[0] == '"' && in[n - 1] == '"')
		in++, n -= 2;
	snprintf(out, outlen, "%.*s", (int)n, in);
}

/* Downloads url into path (continuing what is there), then checks the size and, for an LFS file, the sha256.
 * 0, or an exit code with a message. */
static int download_blob(hub_ctx *h, const char *file, const char *url, int auth, const char *etag,
			 long long expected, const char *path, char *err, size_t errlen)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			errbuf_set(err, errlen, "%s: cannot write %s (%s)", h->arg, path, strerror(errno));
			return EX_IOERR;
		}
		off_t have = lseek(fd, 0, SEEK_END);
		if (expected >= 0 && have > expected) {   /* not a prefix of this file */
			if (ftruncate(fd, 0) < 0 || (have = lseek(fd, 0, SEEK_SET)) < 0)
				have = -1;
		}
		int net = NET_OK;
		response r = {.fd = fd, .base = have, .expected = expected};
		if (st_stderr_is_tty() && (expected < 0 || expected > (1 << 20)))
			r.label = file;
		if (have < 0)
			net = NET_FAIL;
		else if (expected < 0 || have < expected) {
			net = request(h, "GET", url, auth, 1, &r);
			if (r.status == 416 && have > 0)   /* nothing left to send: what we have is the whole file */
				net = NET_OK, r.wrote_error = 0;
		}
		if (net == NET_OK && r.wrote_error)
			net = NET_FAIL;
		if (fsync(fd) < 0 && net == NET_OK)
			net = NET_FAIL;
		close(fd);
		if (net != NET_OK)   /* keep the partial file: the next run continues it */
			return request_error(h, net, &r, file, err, errlen);
		struct stat st;
		if (stat(path, &st) < 0 || (expected >= 0 && st.st_size != expected)) {
			unlink(path);
			errbuf_set(err, errlen, "%s: %s came with %lld bytes, %lld expected: not kept", h->arg, file,
			       (long long)st.st_size, expected);
			return EX_IOERR;
		}
		if (is_sha256(etag)) {
			char hex[65];
			if (file_sha256(path, hex) < 0) {
				errbuf_set(err, errlen, "%s: cannot read %s (%s)", h->arg, path, strerror(errno));
				return EX_IOERR;
			}
			if (strcasecmp(hex, etag)) {
				unlink(path);
				if (have > 0)   /* the part we continued may have been bad: once more from the start */
					continue;
				errbuf_set(err, errlen, "%s: %s: the download's sha256 is %s, the Hub says %s: refused, not kept",
				       h->arg, file, hex, etag);
				return EX_IOERR;
			}
		}
		return 0;
	}
	errbuf_set(err, errlen, "%s: %s: the download's sha256 does not match the Hub's twice: refused, not kept", h->arg,
	       file);
	return EX_IOERR;
}

/* Makes snapshots/{commit}/{file} a relative symlink to blobs/{etag}, atomically (a link made under a
 * temporary name, renamed over the pointer). */
static int link_pointer(hub_ctx *h, const char *commit, const char *file, const char *etag, char *err,
			size_t errlen)
{
	char pointer[PATH_MAX], target[PATH_MAX], tmp[PATH_MAX + 32];
	snprintf(pointer, sizeof pointer, "%s/snapshots/%s/%s", h->storage, commit, file);
	/* from snapshots/{commit}/{dirs of file}: up two, plus one per folder in file */
	size_t o = snprintf(target, sizeof target, "../../");
	for (const char *p = file; *p; p++)
		if (*p == '/')
			o += snprintf(target + o, sizeof target - o, "../");
	snprintf(target + o, sizeof target - o, "blobs/%s", etag);
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", pointer, (long)getpid());
	if (mkdirs_parent(pointer) < 0 || (unlink(tmp), symlink(target, tmp)) < 0 || rename(tmp, pointer) < 0) {
		errbuf_set(err, errlen, "%s: cannot link %s (%s)", h->arg, pointer, strerror(errno));
		unlink(tmp);
		return EX_IOERR;
	}
	return 0;
}

static int fetch_file(hub_ctx *h, const char *commit, const char *file, char *err, size_t errlen)
{
	char pointer[PATH_MAX];
	snprintf(pointer, sizeof pointer, "%s/snapshots/%s/%s", h->storage, commit, file);
	if (exists(pointer))
		return 0;
	char qfile[3 * PATH_MAX], url[8192];
	url_quote(file, 1, qfile, sizeof qfile);
	snprintf(url, sizeof url, "%s/%s/resolve/%s/%s", h->endpoint, h->name.repo, commit, qfile);

	/* HEAD, following only relative redirects (a renamed repo), to read the ETag before any CDN */
	response r = {.fd = -1};
	int net = NET_OK, hops = 0;
	for (;;) {
		net = request(h, "HEAD", url, 1, 0, &r);
		if (net != NET_OK || r.status < 300 || r.status > 399 || !r.location[0] ||
		    strstr(r.location, "://") || ++hops > 5)
			break;
		char *next = NULL;
		lc.easy_getinfo(h->curl, CURLINFO_REDIRECT_URL, &next);
		if (!next)
			break;
		snprintf(url, sizeof url, "%s", next);
	}
	if (net != NET_OK)
		return request_error(h, net, &r, file, err, errlen);
	char etag[256];
	normalize_etag(r.linked_etag[0] ? r.linked_etag : r.etag, etag, sizeof etag);
	/* it names a file in blobs/: letters, digits, '-', '_', '.' (not first) only */
	int usable = etag[0] && etag[0] != '.' && strlen(etag) <= 128;
	for (const char *p = etag; *p && usable; p++)
		usable = isalnum((unsigned char)*p) || strchr("-_.", *p);
	if (!usable) {
		errbuf_set(err, errlen, "%s: the Hub (%s) gave no usable ETag for %s", h->arg, h->endpoint, file);
		return EX_IOERR;
	}
	long long expected = r.linked_size >= 0 ? r.linked_size : r.content_length;
	/* an absolute redirect is the file's real place (a CDN): fetched from there, without the token */
	int from_cdn = r.status >= 300 && r.status <= 399 && r.location[0];
	char where[8192];
	snprintf(where, sizeof where, "%s", from_cdn ? r.location : url);

	char blob[PATH_MAX], incomplete[PATH_MAX + 16], lock[PATH_MAX];
	snprintf(blob, sizeof blob, "%s/blobs/%s", h->storage, etag);
	if (!exists(blob)) {
		const char *folder = strrchr(h->storage, '/');
		snprintf(lock, sizeof lock, "%s/.locks/%s/%s.lock", h->cache, folder ? folder + 1 : h->storage, etag);
		int lfd = -1;
		if (mkdirs_parent(blob) < 0 || mkdirs_parent(lock) < 0 ||
		    (lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || flock(lfd, LOCK_EX) < 0) {
			errbuf_set(err, errlen, "%s: cannot lock %s (%s)", h->arg, lock, strerror(errno));
			if (lfd >= 0)
				close(lfd);
			return EX_IOERR;
		}
		int rc = 0;
		if (!exists(blob)) {   /* another process may have finished it while we waited */
			snprintf(incomplete, sizeof incomplete, "%s.incomplete", blob);
			rc = download_blob(h, file, where, !from_cdn, etag, expected, incomplete, err, errlen);
			if (rc == 0 && rename(incomplete, blob) < 0) {
				errbuf_set(err, errlen, "%s: cannot rename %s (%s)", h->arg, incomplete, strerror(errno));
				rc = EX_IOERR;
			}
		}
		close(lfd);   /* releases the lock */
		if (rc)
			return rc;
	}
	return link_pointer(h, commit, file, etag, err, errlen);
}

/* ---- a whole model ---- */

/* refs/{revision} <- commit, when it says something else (written atomically) */
static int write_ref(hub_ctx *h, const char *commit, char *err, size_t errlen)
{
	if (!strcmp(h->name.revision, commit))
		return 0;
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/refs/%s", h->storage, h->name.revision);
	size_t len;
	char *old = st_read_file(path, &len);
	int same = old && !strcmp(old, commit);
	free(old);
	if (same)
		return 0;
	if (mkdirs_parent(path) < 0 || st_write_file_atomic(path, commit, strlen(commit)) < 0) {
		errbuf_set(err, errlen, "%s: cannot write %s (%s)", h->arg, path, strerror(errno));
		return EX_IOERR;
	}
	return 0;
}

static char *resolve_online(hub_ctx *h, int *code, char *err, size_t errlen)
{
	char qrev[1024], url[4096];
	url_quote(h->name.revision, 0, qrev, sizeof qrev);
	snprintf(url, sizeof url, "%s/api/models/%s/revision/%s", h->endpoint, h->name.repo, qrev);
	response r = {.fd = -1};
	int net = request(h, "GET", url, 1, 1, &r);
	if (net == NET_DOWN) {
		/* no network (or the Hub is down): the cache serves, as huggingface_hub does */
		char *snap = cached_snapshot(h->storage, h->name.revision);
		if (snap) {
			warn("%s: cannot reach the Hub (%s); using the cached snapshot %s", h->arg, h->endpoint, snap);
			free(r.body);
			return snap;
		}
		request_error(h, net, &r, "the model's file list", err, errlen);
		size_t n = strlen(err);
		errbuf_set(err + n, errlen - n, ", and %s is not in the cache %s (once downloaded, HF_HUB_OFFLINE=1 "
		       "reads the cache without the network)", h->name.repo, h->cache);
		free(r.body);
		*code = EX_IOERR;
		return NULL;
	}
	if (net != NET_OK) {
		*code = request_error(h, net, &r, "the model's file list", err, errlen);
		free(r.body);
		return NULL;
	}
	json_error_t je;
	json_t *info = json_loadb(r.body ? r.body : "", r.len, 0, &je);
	free(r.body);
	const char *sha = json_string_value(json_object_get(info, "sha"));
	json_t *siblings = json_object_get(info, "siblings");
	if (!sha || !is_commit(sha) || !json_is_array(siblings)) {
		errbuf_set(err, errlen, "%s: the Hub (%s) answered something else than a model's revision (%s)", h->arg,
		       h->endpoint, info ? "no sha or siblings" : je.text);
		json_decref(info);
		*code = EX_IOERR;
		return NULL;
	}
	char commit[64];
	snprintf(commit, sizeof commit, "%s", sha);
	char snap[PATH_MAX];
	snprintf(snap, sizeof snap, "%s/snapshots/%s", h->storage, commit);
	int rc = 0;
	const char **files = xcalloc(json_array_size(siblings) + 1, sizeof *files);
	json_t *modules = json_array();
	/* modules.json first: the folders it names are wanted too */
	size_t i;
	json_t *s;
	json_array_foreach(siblings, i, s)
		if (!strcmp(json_string_value(json_object_get(s, "rfilename")) ?: "", "modules.json")) {
			if (mkdirs(snap) < 0) {
				errbuf_set(err, errlen, "%s: cannot create %s (%s)", h->arg, snap, strerror(errno));
				rc = EX_IOERR;
				break;
			}
			if ((rc = fetch_file(h, commit, "modules.json", err, errlen)))
				break;
			char p[PATH_MAX];
			snprintf(p, sizeof p, "%s/modules.json", snap);
			json_t *m = json_load_file(p, 0, &je);
			if (json_is_array(m)) {
				json_decref(modules);
				modules = m;
			} else
				json_decref(m);
		}
	size_t n = rc ? 0 : select_files(siblings, modules, files);
	int have_config = 0;
	for (i = 0; i < n; i++)
		have_config |= !strcmp(files[i], "modules.json") || !strcmp(files[i], "config.json");
	if (!rc && !have_config) {
		errbuf_set(err, errlen, "%s: %s on the Hub (%s) is not a sentence-transformers or transformers model (no "
		       "modules.json or config.json)", h->arg, h->name.repo, h->endpoint);
		rc = EX_NOINPUT;
	}
	if (!rc && mkdirs(snap) < 0) {
		errbuf_set(err, errlen, "%s: cannot create %s (%s)", h->arg, snap, strerror(errno));
		rc = EX_IOERR;
	}
	if (!rc)
		rc = write_ref(h, commit, err, errlen);
	for (i = 0; !rc && i < n; i++)
		rc = fetch_file(h, commit, files[i], err, errlen);
	free(files);
	json_decref(modules);
	json_decref(info);
	if (rc) {
		*code = rc;
		return NULL;
	}
	return xstrdup(snap);
}

char *hub_resolve(const char *arg, int *code, char *err, size_t errlen)
{
	if (exists(arg))   /* a local path always wins */
		return xstrdup(arg);
	hub_ctx h = {.arg = arg};
	if (hub_parse_name(arg, &h.name) < 0) {
		errbuf_set(err, errlen, "%s: no such model directory", arg);
		*code = EX_NOINPUT;
		return NULL;
	}
	hub_cache_dir(h.cache, sizeof h.cache);
	if (strlen(h.cache) >= 2048) {
		errbuf_set(err, errlen, "%s: the cache folder's name is too long", arg);
		*code = EX_IOERR;
		return NULL;
	}
	endpoint(h.endpoint, sizeof h.endpoint);
	/* models--{org}--{name} */
	char folder[256];
	snprintf(folder, sizeof folder, "models--%s", h.name.repo);
	for (char *p = folder; *p; p++)
		if (*p == '/') {
			memmove(p + 2, p + 1, strlen(p + 1) + 1);
			p[0] = p[1] = '-';
		}
	snprintf(h.storage, sizeof h.storage, "%s/%s", h.cache, folder);

	if (env_true("HF_HUB_OFFLINE")) {
		char *snap = cached_snapshot(h.storage, h.name.revision);
		if (!snap) {
			errbuf_set(err, errlen, "%s: no such model directory, and %s%s%s is not in the cache %s "
			       "(HF_HUB_OFFLINE=1: no download)", arg, h.name.repo, strcmp(h.name.revision, "main") ? "@" : "",
			       strcmp(h.name.revision, "main") ? h.name.revision : "", h.cache);
			*code = EX_NOINPUT;
		}
		return snap;
	}
	/* a commit that is already in the cache needs no network */
	if (is_commit(h.name.revision)) {
		char *snap = cached_snapshot(h.storage, h.name.revision);
		if (snap)
			return snap;
	}
	char why[600];
	if (dynlib_open(&lc_lib, why, sizeof why) < 0 || dynlib_open(&ossl_lib, why, sizeof why) < 0) {
		errbuf_set(err, errlen, "%s: %s", arg, why);
		*code = EX_IOERR;
		return NULL;
	}
	static int curl_ready;
	if (!curl_ready && lc.global_init(CURL_GLOBAL_DEFAULT) == 0)
		curl_ready = 1;
	if (!curl_ready || !(h.curl = lc.easy_init())) {
		errbuf_set(err, errlen, "%s: cannot start libcurl", arg);
		*code = EX_IOERR;
		return NULL;
	}
	h.token = read_token();
	char *snap = resolve_online(&h, code, err, errlen);
	lc.easy_cleanup(h.curl);
	if (h.token) {
		memset(h.token, 0, strlen(h.token));
		free(h.token);
	}
	return snap;
}

char *hub_model_path(const char *arg)
{
	char err[2048];
	int code = EX_NOINPUT;
	char *path = hub_resolve(arg, &code, err, sizeof err);
	if (!path)
		die(code, "%s", err);
	return path;
}
