/*
 * util.c — small shared helpers: action names, mark bit packing, string copy,
 * the latency histogram, a hash table and its hash (FNV-1a), printing of
 * hostile strings, a child's first descriptors.
 * No logging; the only output is put_safe's, to the caller's stream.
 */
#include <fcntl.h>
#include <libgen.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include <sys/stat.h>
#include <time.h>

#include "smtpguard.h"

static const char *const action_names[] = {
	[ACTION_NONE] = "none",
	[ACTION_REJECT] = "reject",
	[ACTION_TRAP] = "trap",
	[ACTION_AUDIT] = "audit",
	[ACTION_REDIRECT] = "redirect",
	[ACTION_ALLOW] = "allow",
};

const char *
action_name(enum action a)
{
	if ((size_t)a >= sizeof(action_names) / sizeof(action_names[0]))
		return "none";
	return action_names[a];
}

int
action_parse(const char *s, enum action *a)
{
	for (size_t i = ACTION_REJECT; i < sizeof(action_names) / sizeof(action_names[0]); i++)
		if (strcasecmp(s, action_names[i]) == 0) {
			*a = (enum action)i;
			return 0;
		}
	return -1;
}

/* The state shifted to the mask's lowest set bit; 0 if the mask cannot hold it. */
uint32_t
mark_value(uint32_t mask, enum mark_state st)
{
	if (mask == 0)
		return 0;
	uint32_t v = (uint32_t)st << __builtin_ctz(mask);
	return (v & mask) == v ? v : 0;
}

enum mark_state
mark_state_of(uint32_t mask, uint32_t mark)
{
	if (mask == 0)
		return MARK_NONE;
	uint32_t v = (mark & mask) >> __builtin_ctz(mask);
	return v <= MARK_LAST ? (enum mark_state)v : MARK_NONE;
}

size_t
strlcpy_sg(char *dst, const char *src, size_t size)
{
	size_t n = strlen(src);

	if (size > 0) {
		size_t k = n < size - 1 ? n : size - 1;
		memcpy(dst, src, k);
		dst[k] = '\0';
	}
	return n;
}

/*
 * The one line reader of config and exception files: the next line of the
 * text in [*p, end), without its "\n" and the "\r" an editor elsewhere puts
 * before it; *p moves past it. 1: a line in *line and *len (not
 * NUL-terminated); 0: end of the text; -1: the line holds a NUL byte
 * (errno EILSEQ: not a text file) or is longer than max bytes (E2BIG). On -1
 * *line and *len still give the line, so the caller can quote it.
 */
int
text_line(const char **p, const char *end, size_t max, const char **line, size_t *len)
{
	const char *s = *p, *nl;
	size_t n;

	if (s >= end)
		return 0;
	nl = memchr(s, '\n', (size_t)(end - s));
	n = nl != NULL ? (size_t)(nl - s) : (size_t)(end - s);
	*p = s + n + (nl != NULL);
	if (n > 0 && s[n - 1] == '\r')
		n--;
	*line = s;
	*len = n;
	if (memchr(s, '\0', n) != NULL) {
		errno = EILSEQ;
		return -1;
	}
	if (n > max) {
		errno = E2BIG;
		return -1;
	}
	return 1;
}

bool
uid_in_sorted(uid_t uid, const uid_t *uids, size_t n)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (uids[mid] == uid)
			return true;
		if (uids[mid] < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* mkdir -p of PATH's parent directory, new levels with MODE. */
int
ensure_parent_dir(const char *path, mode_t mode)
{
	char dir[PATH_MAX];
	char *slash;

	if (strlcpy_sg(dir, path, sizeof(dir)) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((slash = strrchr(dir, '/')) == NULL || slash == dir)
		return 0;
	*slash = '\0';
	for (char *p = dir + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;

		*p = '\0';
		if (mkdir(dir, mode) < 0 && errno != EEXIST)
			return -1;
		if (c == '\0')
			break;
		*p = c;
	}
	return 0;
}

/*
 * Replaces PATH atomically: FILL writes the new contents to a temporary file
 * beside it (mkostemp makes it 0600; it then gets MODE), which is flushed,
 * fsynced and renamed over PATH, and the directory is fsynced after. On any
 * failure the old file is as it was, the temporary file is gone, and errno
 * says why. A failed directory fsync after the rename only weakens
 * durability across a crash: the new file is what readers see, so it is
 * not reported (the caller would undo a change that stands).
 */
int
file_replace(const char *path, mode_t mode, int (*fill)(FILE *, void *), void *arg)
{
	return file_replace_owned(path, mode, (uid_t)-1, (gid_t)-1, fill, arg);
}

/* file_replace, the new file also owned by UID:GID ((uid_t)-1: the caller's, as made). */
int
file_replace_owned(const char *path, mode_t mode, uid_t uid, gid_t gid,
    int (*fill)(FILE *, void *), void *arg)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	FILE *fp;
	int fd, dfd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (ensure_parent_dir(path, 0755) < 0 || (fd = mkostemp(tmp, O_CLOEXEC)) < 0)
		return -1;
	if (((uid != (uid_t)-1 || gid != (gid_t)-1) && fchown(fd, uid, gid) < 0) ||
	    fchmod(fd, mode) < 0 || (fp = fdopen(fd, "w")) == NULL) {
		saved = errno;
		close(fd);
		goto fail;
	}
	errno = 0;
	if (fill(fp, arg) < 0 || fflush(fp) != 0 || ferror(fp) || fsync(fileno(fp)) < 0) {
		saved = errno != 0 ? errno : EIO;
		fclose(fp);
		goto fail;
	}
	if (fclose(fp) != 0 || rename(tmp, path) < 0) {
		saved = errno;
		goto fail;
	}
	strlcpy_sg(dir, path, sizeof(dir));
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	unlink(tmp);
	errno = saved;
	return -1;
}

struct bytes {
	const char	*p;
	size_t		 n;
};

static int
fill_bytes(FILE *fp, void *arg)
{
	const struct bytes *b = arg;

	return b->n == 0 || fwrite(b->p, 1, b->n, fp) == b->n ? 0 : -1;
}

/* file_replace_owned with the new contents already in memory (a config file's bytes). */
int
file_replace_bytes(const char *path, mode_t mode, uid_t uid, gid_t gid, const char *p,
    size_t n)
{
	struct bytes b = { p, n };

	return file_replace_owned(path, mode, uid, gid, fill_bytes, &b);
}

/* Nanoseconds on the monotonic clock: for budgets and latencies. */
uint64_t
mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Latency histogram: four buckets per power of two (a bucket spans at most a
 * quarter of its value), so quantiles are read to within 25% from 2 KiB of
 * counters, at one add per sample.
 */
static unsigned
hist_bucket(uint64_t v)
{
	unsigned msb;

	if (v < 4)
		return (unsigned)v;
	msb = 63u - (unsigned)__builtin_clzll(v);
	return 4 * (msb - 1) + (unsigned)((v >> (msb - 2)) & 3);
}

/* The largest value that falls in bucket B. */
static uint64_t
hist_upper(unsigned b)
{
	unsigned msb = b / 4 + 1, sub = b % 4;

	if (b < 4)
		return b;
	if (msb == 63 && sub == 3)
		return UINT64_MAX;
	return ((uint64_t)(4 + sub + 1) << (msb - 2)) - 1;
}

void
hist_add(struct hist *h, uint64_t v)
{
	h->count[hist_bucket(v)]++;
	h->total++;
	if (v > h->max)
		h->max = v;
}

/* The upper bound of the bucket holding quantile Q (0..1); 0 when empty. */
uint64_t
hist_quantile(const struct hist *h, double q)
{
	uint64_t want, seen = 0;

	if (h->total == 0)
		return 0;
	want = (uint64_t)(q * (double)h->total);
	if (want >= h->total)
		want = h->total - 1;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen > want)
			return hist_upper(b) < h->max ? hist_upper(b) : h->max;
	}
	return h->max;
}

/* --- printing hostile strings ----------------------------------------------- */

/*
 * Shows a hostile string without letting it act on the terminal: C0 controls
 * and DEL as \xNN, C1 controls and the bidirectional overrides (which make
 * text read backwards) as \uNNNN; everything else as it is. The log is valid
 * UTF-8 (jansson refuses anything else), so multibyte sequences are whole.
 */
void
put_safe(FILE *fp, const char *s, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t shown = 0;

	for (; *p != '\0' && shown < max; p++, shown++) {
		if (*p < 0x20 || *p == 0x7f)
			fprintf(fp, "\\x%02x", *p);
		else if (*p == '\\')
			fputs("\\\\", fp);	/* else a name holding "\x1b" reads as an escaped ESC */
		else if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			fprintf(fp, "\\u%04x", p[1]);
			p++;
		} else if (p[0] == 0xe2 && p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) {
			fprintf(fp, "\\u%04x", 0x2000 + (p[2] & 0x3f));
			p += 2;
		} else if (p[0] == 0xe2 && p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9) {
			fprintf(fp, "\\u%04x", 0x2040 + (p[2] & 0x3f));
			p += 2;
		} else
			fputc(*p, fp);
	}
	if (*p != '\0')
		fputs("...", fp);
}

/* --- a chained hash table ------------------------------------------------------ */

#define HTAB_INITIAL	4096

int
htab_init(struct htab *h)
{
	h->n = 0;
	h->nb = (h->b = calloc(HTAB_INITIAL, sizeof(*h->b))) == NULL ? 0 : HTAB_INITIAL;
	return h->nb == 0 ? -1 : 0;
}

void
htab_insert(struct htab *h, struct hnode *x)
{
	if (h->n >= h->nb * 2) {
		struct hnode **nb = calloc(h->nb * 2, sizeof(*nb));

		/* Out of memory: keep the old table; chains just get longer. */
		if (nb != NULL) {
			for (size_t i = 0; i < h->nb; i++)
				for (struct hnode *y = h->b[i], *next; y != NULL; y = next) {
					next = y->next;
					y->next = nb[y->hash & (h->nb * 2 - 1)];
					nb[y->hash & (h->nb * 2 - 1)] = y;
				}
			free(h->b);
			h->b = nb;
			h->nb *= 2;
		}
	}
	x->next = h->b[x->hash & (h->nb - 1)];
	h->b[x->hash & (h->nb - 1)] = x;
	h->n++;
}

void
htab_remove(struct htab *h, struct hnode *x)
{
	for (struct hnode **pp = &h->b[x->hash & (h->nb - 1)]; *pp != NULL; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			h->n--;
			return;
		}
}

/* Frees every node (through free_node, which frees what the node owns and the node). */
void
htab_free(struct htab *h, void (*free_node)(struct hnode *))
{
	for (size_t i = 0; i < h->nb; i++)
		for (struct hnode *x = h->b[i], *next; x != NULL; x = next) {
			next = x->next;
			free_node(x);
		}
	free(h->b);
	h->b = NULL;
	h->nb = h->n = 0;
}

/* htab_free()'s free_node for nodes that own nothing else. */
void
hnode_free(struct hnode *x)
{
	free(x);
}

/*
 * FNV-1a, 64 bits (Fowler, Noll, Vo): start from FNV1A64_BASIS and feed
 * the bytes, in one call or several. Fast and good enough for tables whose
 * keys come from this host; it is not a defence against chosen collisions.
 */
uint64_t
fnv1a64(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= FNV1A64_PRIME;
	}
	return h;
}

/* fnv1a64() of the bytes with ASCII letters folded to lower case: names, domains. */
uint64_t
fnv1a64_lower(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i] >= 'A' && b[i] <= 'Z' ? b[i] + 32 : b[i];
		h *= FNV1A64_PRIME;
	}
	return h;
}

size_t
str_hash(const char *s)
{
	return (size_t)fnv1a64(FNV1A64_BASIS, s, strlen(s));
}

/* The admin's commands speak with one voice: "smtpguard: MESSAGE" on stderr. */
void
cli_say(const char *fmt, ...)
{
	va_list ap;

	fputs("smtpguard: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Input echoed in an error: printable ASCII only, cut to ERR_QUOTE_MAX. */
const char *
err_quote(const char *s, char *out, size_t outlen)
{
	size_t n = strlen(s), k = 0, keep = n < ERR_QUOTE_MAX ? n : ERR_QUOTE_MAX;

	for (size_t i = 0; i < keep && k + 1 < outlen; i++)
		out[k++] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
	if (keep < n && k + 3 < outlen) {
		memcpy(out + k, "...", 3);
		k += 3;
	}
	out[k] = '\0';
	return out;
}

/* RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF. */
bool
utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned int c = *s, need, min;
		unsigned long cp;

		if (c < 0x80) {
			s++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			need = 1, min = 0x80, cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			need = 2, min = 0x800, cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			need = 3, min = 0x10000, cp = c & 0x07;
		} else
			return false;
		for (unsigned int i = 1; i <= need; i++) {
			if ((s[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += need + 1;
	}
	return true;
}

static int
cmp_fd(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/*
 * A child's start (the trap, the gate): the parent's descriptors (the queue,
 * the control socket, the event log, the terminal it was started from) are
 * not its business. 0-2 go to /dev/null and only the NKEEP in KEEP stay
 * open (KEEP is sorted here). -1 when /dev/null cannot be had.
 */
int
close_inherited(int *keep, size_t nkeep)
{
	unsigned int from = 3;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (null < 0)
		return -1;
	for (int fd = 0; fd < 3; fd++)
		if (fd != null && dup2(null, fd) < 0)
			return -1;
	qsort(keep, nkeep, sizeof(*keep), cmp_fd);
	for (size_t i = 0; i < nkeep; i++) {
		if ((unsigned int)keep[i] > from)
			close_range(from, (unsigned int)keep[i] - 1, 0);
		if ((unsigned int)keep[i] >= from)
			from = (unsigned int)keep[i] + 1;
	}
	close_range(from, ~0U, 0);
	return 0;
}
