/*
 * cost.c - Cost Explorer answers into cost figures (see cost.h).
 *
 * Calendar arithmetic is Howard Hinnant's days_from_civil/civil_from_days
 * (public domain): exact for every date, no time zone, no libc state.
 */
#include "cost.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NANO 1000000000
#define AMOUNT_DIGITS_MAX 18 /* |nano| < 1e18: 1e9 USD */
#define EXPONENT_MAX 400     /* beyond it every amount is 0 or too big */

static void why_set(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
why_set(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------ days */

static int32_t
days_from_civil(int32_t y, unsigned m, unsigned d)
{
	int32_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int32_t)doe - 719468;
}

static void
civil_from_days(int32_t z, int32_t *y, unsigned *m, unsigned *d)
{
	int32_t era;
	unsigned doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = (unsigned)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = (int32_t)yoe + era * 400 + (*m <= 2);
}

int32_t
cost_day_of(time_t t)
{
	time_t d = t / 86400;

	if (t % 86400 < 0)
		d--;
	return (int32_t)d;
}

int
cost_day_parse(const char *s, int32_t *day)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};
	int32_t y = 0;
	unsigned m, d, i;
	char out[COST_DAY_LEN];

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return -1;
	for (i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return -1;
	for (i = 0; i < 4; i++)
		y = y * 10 + (s[i] - '0');
	m = (unsigned)(s[5] - '0') * 10 + (unsigned)(s[6] - '0');
	d = (unsigned)(s[8] - '0') * 10 + (unsigned)(s[9] - '0');
	if (m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	*day = days_from_civil(y, m, d);
	/* February 29th of a common year comes back as March 1st. */
	cost_day_format(*day, out);
	return strcmp(out, s) == 0 ? 0 : -1;
}

/* v's last `width` decimal digits at p, zero-padded; no NUL. */
static void
digits_put(char *p, unsigned v, int width)
{
	while (width-- > 0) {
		p[width] = (char)('0' + v % 10);
		v /= 10;
	}
}

void
cost_day_format(int32_t day, char *out)
{
	int32_t y;
	unsigned m, d;

	/* Clamped to years 0000..9999 (Cost Explorer has nothing outside):
	 * the fields then have exactly 4, 2 and 2 digits, and
	 * civil_from_days's arithmetic stays within int32_t. */
	if (day < COST_DAY_MIN)
		day = COST_DAY_MIN;
	else if (day > COST_DAY_MAX)
		day = COST_DAY_MAX;
	civil_from_days(day, &y, &m, &d);
	digits_put(out, (unsigned)y, 4);
	out[4] = '-';
	digits_put(out + 5, m, 2);
	out[7] = '-';
	digits_put(out + 8, d, 2);
	out[10] = '\0';
}

int32_t
cost_month_first(int32_t day)
{
	int32_t y;
	unsigned m, d;

	civil_from_days(day, &y, &m, &d);
	return days_from_civil(y, m, 1);
}

int32_t
cost_month_next(int32_t day)
{
	int32_t y;
	unsigned m, d;

	civil_from_days(day, &y, &m, &d);
	return m == 12 ? days_from_civil(y + 1, 1, 1)
		       : days_from_civil(y, m + 1, 1);
}

void
cost_window_init(struct cost_window *w, int32_t today)
{
	w->today = today;
	w->month_first = cost_month_first(today);
	w->month_next = cost_month_next(today);
	w->start = w->month_first < today - 7 ? w->month_first : today - 7;
	w->end = today + 1;
}

bool
cost_window_has_forecast(const struct cost_window *w)
{
	return w->end < w->month_next;
}

/* ------------------------------------------------------- requests */

static cJSON *
add_period(cJSON *req, int32_t start, int32_t end)
{
	char s[COST_DAY_LEN], e[COST_DAY_LEN];
	cJSON *tp = cJSON_AddObjectToObject(req, "TimePeriod");

	cost_day_format(start, s);
	cost_day_format(end, e);
	if (tp == NULL || cJSON_AddStringToObject(tp, "Start", s) == NULL ||
	    cJSON_AddStringToObject(tp, "End", e) == NULL)
		return NULL;
	return tp;
}

char *
cost_usage_request(const struct cost_window *w, const char *token)
{
	cJSON *req = cJSON_CreateObject(), *metrics, *group_by, *g;
	char *out = NULL;

	if (req == NULL || add_period(req, w->start, w->end) == NULL ||
	    cJSON_AddStringToObject(req, "Granularity", "DAILY") == NULL ||
	    (metrics = cJSON_AddArrayToObject(req, "Metrics")) == NULL ||
	    !cJSON_AddItemToArray(metrics,
				  cJSON_CreateString("UnblendedCost")) ||
	    (group_by = cJSON_AddArrayToObject(req, "GroupBy")) == NULL ||
	    (g = cJSON_CreateObject()) == NULL ||
	    !cJSON_AddItemToArray(group_by, g) ||
	    cJSON_AddStringToObject(g, "Type", "DIMENSION") == NULL ||
	    cJSON_AddStringToObject(g, "Key", "SERVICE") == NULL ||
	    (token != NULL &&
	     cJSON_AddStringToObject(req, "NextPageToken", token) == NULL))
		goto done;
	out = cJSON_PrintUnformatted(req);
done:
	cJSON_Delete(req);
	return out;
}

char *
cost_forecast_request(const struct cost_window *w)
{
	cJSON *req = cJSON_CreateObject();
	char *out = NULL;

	if (req == NULL || add_period(req, w->end, w->month_next) == NULL ||
	    cJSON_AddStringToObject(req, "Metric", "UNBLENDED_COST") == NULL ||
	    cJSON_AddStringToObject(req, "Granularity", "MONTHLY") == NULL)
		goto done;
	out = cJSON_PrintUnformatted(req);
done:
	cJSON_Delete(req);
	return out;
}

/* -------------------------------------------------------- amounts */

int
cost_amount_parse(const char *s, int64_t *nano)
{
	char digits[COST_AMOUNT_MAX];
	size_t n = 0, i;
	long point, exp = 0, k;
	bool neg = false, exp_neg = false;
	uint64_t v = 0;
	unsigned sig = 0;

	if (s == NULL || strlen(s) >= COST_AMOUNT_MAX)
		return -1;
	if (*s == '-') {
		neg = true;
		s++;
	}
	if (*s < '0' || *s > '9')
		return -1;
	while (*s >= '0' && *s <= '9')
		digits[n++] = *s++;
	point = (long)n;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return -1;
		while (*s >= '0' && *s <= '9')
			digits[n++] = *s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			exp_neg = *s++ == '-';
		if (*s < '0' || *s > '9')
			return -1;
		while (*s >= '0' && *s <= '9') {
			exp = exp * 10 + (*s++ - '0');
			if (exp > EXPONENT_MAX)
				return -1;
		}
	}
	if (*s != '\0')
		return -1;
	/* value = 0.d0 d1 ... * 10^(point + exp); the nano-dollars are its
	 * first k digits, rounded by digit k (half away from zero). */
	k = point + (exp_neg ? -exp : exp) + 9;
	for (i = 0; (long)i < k; i++) {
		unsigned dg = i < n ? (unsigned)(digits[i] - '0') : 0;

		if (sig > 0 || dg != 0)
			sig++;
		if (sig > AMOUNT_DIGITS_MAX)
			return -1;
		v = v * 10 + dg;
	}
	if (k >= 0 && (size_t)k < n && digits[k] >= '5') {
		v++;
		if (v >= 1000000000000000000ull)
			return -1;
	}
	*nano = neg ? -(int64_t)v : (int64_t)v;
	return 0;
}

int
cost_amount_format(char *buf, size_t len, int64_t nano, uint32_t divisor)
{
	uint64_t unit = (uint64_t)NANO * (divisor > 0 ? divisor : 1);
	uint64_t m = nano < 0 ? -(uint64_t)nano : (uint64_t)nano;
	uint64_t rem = m % unit;
	char frac[13];
	int i, last = -1;

	for (i = 0; i < 12; i++) {
		rem *= 10;
		frac[i] = (char)('0' + rem / unit);
		rem %= unit;
		if (frac[i] != '0')
			last = i;
	}
	frac[last + 1] = '\0';
	return snprintf(buf, len, "%s%llu%s%s",
			nano < 0 && (m / unit > 0 || last >= 0) ? "-" : "",
			(unsigned long long)(m / unit), last >= 0 ? "." : "",
			frac);
}

/* ---------------------------------------------------------- totals */

void
cost_totals_init(struct cost_totals *t, const struct cost_window *w)
{
	memset(t, 0, sizeof(*t));
	t->window = *w;
}

void
cost_totals_free(struct cost_totals *t)
{
	size_t i;

	for (i = 0; i < t->nservices; i++)
		free(t->services[i].name);
	free(t->services);
	t->services = NULL;
	t->nservices = t->cap = 0;
	t->month_to_date = t->seven_days = 0;
	t->days_seen = 0;
	t->pages = 0;
}

/* Index of `name` in the sorted services, or where it would go. */
static size_t
service_slot(const struct cost_totals *t, const char *name, bool *found)
{
	size_t lo = 0, hi = t->nservices, mid;
	int c;

	*found = false;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(t->services[mid].name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct cost_service *
cost_totals_find(const struct cost_totals *t, const char *name)
{
	bool found;
	size_t i = service_slot(t, name, &found);

	return found ? &t->services[i] : NULL;
}

/* The service called `name`, added if new; NULL with the reason. */
static struct cost_service *
service_get(struct cost_totals *t, const char *name, char *why, size_t len)
{
	struct cost_service *ns;
	bool found;
	size_t i = service_slot(t, name, &found), cap;

	if (found)
		return &t->services[i];
	if (t->nservices == COST_SERVICES_MAX) {
		why_set(why, len, "more than %d services", COST_SERVICES_MAX);
		return NULL;
	}
	if (t->nservices == t->cap) {
		cap = t->cap > 0 ? t->cap * 2 : 16;
		if ((ns = realloc(t->services, cap * sizeof(*ns))) == NULL)
			goto nomem;
		t->services = ns;
		t->cap = cap;
	}
	memmove(&t->services[i + 1], &t->services[i],
		(t->nservices - i) * sizeof(*t->services));
	memset(&t->services[i], 0, sizeof(t->services[i]));
	if ((t->services[i].name = strdup(name)) == NULL) {
		memmove(&t->services[i], &t->services[i + 1],
			(t->nservices - i) * sizeof(*t->services));
		goto nomem;
	}
	t->nservices++;
	return &t->services[i];
nomem:
	why_set(why, len, "out of memory");
	return NULL;
}

static int
add(int64_t *sum, int64_t v)
{
	return __builtin_add_overflow(*sum, v, sum) ? -1 : 0;
}

/* One day's amount of one service, into every figure it belongs to. */
static int
account(struct cost_totals *t, struct cost_service *s, int32_t day, int64_t v)
{
	const struct cost_window *w = &t->window;
	int rc = 0;

	if (day == w->today)
		rc |= add(&s->today, v);
	if (day == w->today - 1)
		rc |= add(&s->yesterday, v);
	if (day >= w->month_first) {
		rc |= add(&s->month_to_date, v);
		rc |= add(&t->month_to_date, v);
	}
	if (day >= w->today - 7 && day < w->today)
		rc |= add(&t->seven_days, v);
	return rc;
}

static const char *
string_at(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* {"Amount": "1.23", "Unit": "USD"} into *nano; NULL or the reason. */
static const char *
money(const cJSON *m, int64_t *nano)
{
	const char *amount = string_at(m, "Amount");
	const char *unit = string_at(m, "Unit");

	if (amount == NULL)
		return "no Amount";
	if (cost_amount_parse(amount, nano) == -1)
		return "an invalid Amount";
	if (unit == NULL || strcmp(unit, "USD") != 0)
		return "a Unit other than USD";
	return NULL;
}

/* One ResultsByTime entry: a day, its groups. */
static int
add_result(struct cost_totals *t, const cJSON *r, char *why, size_t len)
{
	const cJSON *tp = cJSON_GetObjectItemCaseSensitive(r, "TimePeriod");
	const cJSON *groups = cJSON_GetObjectItemCaseSensitive(r, "Groups");
	const cJSON *g, *keys, *m;
	const char *start = string_at(tp, "Start"), *end = string_at(tp, "End");
	const char *name, *bad;
	char day_s[COST_DAY_LEN];
	struct cost_service *s;
	int32_t day, next;
	int64_t v;
	uint64_t bit;

	if (cost_day_parse(start, &day) == -1 ||
	    cost_day_parse(end, &next) == -1 || next != day + 1) {
		why_set(why, len, "a TimePeriod that is not one day");
		return -1;
	}
	if (day < t->window.start || day >= t->window.end) {
		why_set(why, len, "%s: outside the period asked for", start);
		return -1;
	}
	bit = 1ull << (day - t->window.start);
	if (t->days_seen & bit) {
		why_set(why, len, "%s: twice", start);
		return -1;
	}
	t->days_seen |= bit;
	if (!cJSON_IsArray(groups)) {
		why_set(why, len, "%s: no Groups", start);
		return -1;
	}
	cost_day_format(day, day_s);
	cJSON_ArrayForEach (g, groups) {
		keys = cJSON_GetObjectItemCaseSensitive(g, "Keys");
		m = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(g, "Metrics"),
		    "UnblendedCost");
		if (!cJSON_IsArray(keys) ||
		    !cJSON_IsString(cJSON_GetArrayItem(keys, 0))) {
			why_set(why, len, "%s: a group without Keys", day_s);
			return -1;
		}
		name = cJSON_GetArrayItem(keys, 0)->valuestring;
		if (name[0] == '\0' || strlen(name) > COST_SERVICE_NAME_MAX) {
			why_set(why, len,
				"%s: a service name empty or over "
				"%d bytes",
				day_s, COST_SERVICE_NAME_MAX);
			return -1;
		}
		if (m == NULL) {
			why_set(why, len, "%s: %s: no UnblendedCost", day_s,
				name);
			return -1;
		}
		if ((bad = money(m, &v)) != NULL) {
			why_set(why, len, "%s: %s: %s", day_s, name, bad);
			return -1;
		}
		if ((s = service_get(t, name, why, len)) == NULL)
			return -1;
		if (account(t, s, day, v) == -1) {
			why_set(why, len, "%s: %s: a sum out of range", day_s,
				name);
			return -1;
		}
	}
	return 0;
}

int
cost_totals_add_page(struct cost_totals *t, const char *json, size_t len,
		     char **token, char *why, size_t why_len)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	const cJSON *results, *r, *next;
	int rc = -1;

	*token = NULL;
	if (!cJSON_IsObject(j)) {
		why_set(why, why_len, "not a JSON object");
		goto done;
	}
	results = cJSON_GetObjectItemCaseSensitive(j, "ResultsByTime");
	if (!cJSON_IsArray(results)) {
		why_set(why, why_len, "no ResultsByTime");
		goto done;
	}
	cJSON_ArrayForEach (r, results)
		if (add_result(t, r, why, why_len) == -1)
			goto done;
	next = cJSON_GetObjectItemCaseSensitive(j, "NextPageToken");
	if (next != NULL && !cJSON_IsNull(next)) {
		if (!cJSON_IsString(next) ||
		    strlen(next->valuestring) > COST_TOKEN_MAX) {
			why_set(why, why_len, "an invalid NextPageToken");
			goto done;
		}
		if (next->valuestring[0] != '\0' &&
		    (*token = strdup(next->valuestring)) == NULL) {
			why_set(why, why_len, "out of memory");
			goto done;
		}
	}
	t->pages++;
	rc = 0;
done:
	cJSON_Delete(j);
	return rc;
}

bool
cost_totals_has_day(const struct cost_totals *t, int32_t day)
{
	if (day < t->window.start || day >= t->window.end)
		return false;
	return (t->days_seen & (1ull << (day - t->window.start))) != 0;
}

unsigned
cost_totals_missing(const struct cost_totals *t, char *list, size_t list_len)
{
	static const char more[] = ", ...";
	char day_s[COST_DAY_LEN];
	size_t used = 0;
	unsigned n = 0;
	bool cut = false;
	int32_t d;

	if (list_len > 0)
		list[0] = '\0';
	for (d = t->window.start; d < t->window.end; d++) {
		if (cost_totals_has_day(t, d))
			continue;
		n++;
		if (list_len == 0 || cut)
			continue;
		cost_day_format(d, day_s);
		/* room for this day, its separator and a later ", ..." */
		if (used + 2 + COST_DAY_LEN + sizeof(more) > list_len) {
			cut = true;
			if (used > 0 && used + sizeof(more) <= list_len)
				memcpy(list + used, more, sizeof(more));
			continue;
		}
		used += (size_t)snprintf(list + used, list_len - used, "%s%s",
					 used > 0 ? ", " : "", day_s);
	}
	return n;
}

unsigned
cost_totals_seven_days_seen(const struct cost_totals *t)
{
	unsigned n = 0;
	int32_t d;

	for (d = t->window.today - 7; d < t->window.today; d++)
		if (cost_totals_has_day(t, d))
			n++;
	return n;
}

int
cost_forecast_parse(const char *json, size_t len, int64_t *nano, char *why,
		    size_t why_len)
{
	cJSON *j = cJSON_ParseWithLength(json, len);
	const cJSON *total = cJSON_GetObjectItemCaseSensitive(j, "Total");
	const char *bad;
	int rc = -1;

	if (!cJSON_IsObject(j)) {
		why_set(why, why_len, "not a JSON object");
		goto done;
	}
	if (!cJSON_IsObject(total)) {
		why_set(why, why_len, "no Total");
		goto done;
	}
	if ((bad = money(total, nano)) != NULL) {
		why_set(why, why_len, "Total: %s", bad);
		goto done;
	}
	rc = 0;
done:
	cJSON_Delete(j);
	return rc;
}
