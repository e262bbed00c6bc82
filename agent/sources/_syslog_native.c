/* The syslog receiver's hot path in C: split a read buffer into frames (octet counting, LF, or one
 * datagram) and parse each ASCII frame into the Record the batcher takes, without a Python object
 * per header field.
 *
 * Python stays the reference: syslog_framing.FrameSplitter for the framing, syslog_parse.parse_syslog
 * and syslog.to_record for a frame. Every regular expression of syslog_parse is matched here by hand
 * with the same result (the comments name the pattern); tests/unit/test_syslog_native.py holds both
 * paths to the same records and counts on random and hostile input. A frame with a byte over 0x7f
 * goes to the Python `fallback` (its character classes, lengths in characters and the replacement
 * of invalid UTF-8 are Python's).
 *
 * The Record and Parsed types, the facility names and the structured-data keys that become columns
 * come from Python at init(), so there is one source of truth for them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "../_civil_days.h"

typedef const unsigned char uchar;

static PyTypeObject *record_type = NULL, *parsed_type = NULL;
static PyObject *facilities = NULL;      /* tuple of 24 names */
static PyObject *column_keys = NULL;     /* {sd param name: "request_id" | "user" | "action"} */
static PyObject *k_facility = NULL, *k_msgid = NULL, *k_procid = NULL, *empty = NULL;
static PyObject *c_request_id = NULL, *c_user = NULL, *c_action = NULL;

enum { P_NONE, P_EMPTY, P_TOO_LONG, P_NO_PRIORITY, P_BAD_PRIORITY, P_BAD_TIMESTAMP, P_BAD_SD, P_COUNT };
enum { MODE_LF, MODE_OCTET, MODE_DATAGRAM };
#define MAX_LENGTH_DIGITS 10
#define MAX_TIME_US 253402300799999999LL
#define MIN_TIME_US (-62135596800LL * 1000000LL)

static inline int is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static inline int is_upper(unsigned c) { return c >= 'A' && c <= 'Z'; }
static inline int is_lower(unsigned c) { return c >= 'a' && c <= 'z'; }
/* Python's \s and str.isspace() on ASCII */
static inline int is_space(unsigned c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }
static inline int two(uchar *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }
static int digits(uchar *s, Py_ssize_t p, Py_ssize_t n, int most)   /* the run of digits at p, up to most+1 */
{
    int k = 0;
    while (p + k < n && k <= most && is_digit(s[p + k]))
        k++;
    return k;
}

static PyObject *ascii_text(uchar *s, Py_ssize_t len)
{
    if (len <= 0) {
        Py_INCREF(empty);
        return empty;
    }
    PyObject *text = PyUnicode_New(len, 127);
    if (text != NULL)
        memcpy(PyUnicode_1BYTE_DATA(text), s, len);
    return text;
}

/* -- times ------------------------------------------------------------------------------------ */

/* syslog_parse._epoch_us: 1 and *us, or 0 where datetime() raises or the time is out of range. */
static int epoch_us(int year, int month, int day, int hour, int minute, int second, uchar *fraction,
                    int fraction_len, int zone_seconds, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1 || year > 9999 || month < 1 || month > 12 || hour > 23 || minute > 59 || day < 1)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[month - 1] + (month == 2 && leap))
        return 0;
    if (second > 59)
        second = 59;   /* a leap second: :59 */
    int64_t t = (days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - zone_seconds)
                * 1000000LL;
    if (fraction_len) {
        int64_t f = 0;
        for (int k = 0; k < 6; k++)
            f = f * 10 + (k < fraction_len ? fraction[k] - '0' : 0);
        t += f;
    }
    if (t < MIN_TIME_US || t > MAX_TIME_US)
        return 0;
    *us = t;
    return 1;
}

typedef struct {
    int year, month, day, hour, minute, second, fraction_len, zone_seconds;
    uchar *fraction;
} stamp;

/* _RFC3339.match at p: (\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?
 * (Z|z|[+-]\d{2}:?\d{2})? -> where it ends, or -1. */
static Py_ssize_t match_rfc3339(uchar *s, Py_ssize_t p, Py_ssize_t n, stamp *m)
{
    static const int digit_at[] = {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18};
    uchar *t = s + p;
    if (n - p < 19 || t[4] != '-' || t[7] != '-' || (t[10] != 'T' && t[10] != 't' && t[10] != ' ')
        || t[13] != ':' || t[16] != ':')
        return -1;
    for (size_t k = 0; k < sizeof digit_at / sizeof *digit_at; k++)
        if (!is_digit(t[digit_at[k]]))
            return -1;
    m->year = two(t) * 100 + two(t + 2);
    m->month = two(t + 5);
    m->day = two(t + 8);
    m->hour = two(t + 11);
    m->minute = two(t + 14);
    m->second = two(t + 17);
    m->fraction_len = 0;
    m->fraction = NULL;
    m->zone_seconds = 0;
    Py_ssize_t q = p + 19;
    if (q + 1 < n && (s[q] == '.' || s[q] == ',') && is_digit(s[q + 1])) {
        int k = digits(s, q + 1, n, 9);
        if (k > 9)
            k = 9;
        m->fraction = s + q + 1;
        m->fraction_len = k;
        q += 1 + k;
    }
    if (q < n && (s[q] == 'Z' || s[q] == 'z'))
        return q + 1;
    if (q < n && (s[q] == '+' || s[q] == '-') && q + 2 < n && is_digit(s[q + 1]) && is_digit(s[q + 2])) {
        Py_ssize_t minutes = -1;
        if (q + 5 < n && s[q + 3] == ':' && is_digit(s[q + 4]) && is_digit(s[q + 5]))
            minutes = q + 4;
        else if (q + 4 < n && is_digit(s[q + 3]) && is_digit(s[q + 4]))
            minutes = q + 3;
        if (minutes >= 0) {
            int seconds = two(s + q + 1) * 3600 + two(s + minutes) * 60;
            m->zone_seconds = s[q] == '-' ? -seconds : seconds;
            return minutes + 2;
        }
    }
    return q;
}

static int rfc3339_us(const stamp *m, int64_t *us)
{
    return epoch_us(m->year, m->month, m->day, m->hour, m->minute, m->second, m->fraction, m->fraction_len,
                    m->zone_seconds, us);
}

/* (?=[: ]|$) — $ also matches before a newline that ends the text */
static inline int stamp_end(uchar *s, Py_ssize_t q, Py_ssize_t n)
{
    return q == n || s[q] == ':' || s[q] == ' ' || (q == n - 1 && s[q] == '\n');
}

/* _BSD_TIME.match at p: ([A-Z][a-z]{2}) {1,2}(\d{1,2})(?: (\d{4}))? (\d{2}):(\d{2}):(\d{2})
 * (?:\.(\d{1,6}))?(?: (?:UTC|GMT|[A-Z]{3,4}))?(?=[: ]|$) -> where it ends, or -1; *month 0 for a
 * name that is no month. The pattern never backtracks into a different match (each part is followed
 * by what its shorter forms cannot be followed by), so one forward pass decides it. */
static Py_ssize_t match_bsd(uchar *s, Py_ssize_t p, Py_ssize_t n, stamp *m, int *has_year)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n - p < 3 || !is_upper(s[p]) || !is_lower(s[p + 1]) || !is_lower(s[p + 2]))
        return -1;
    m->month = 0;
    for (int k = 0; k < 12; k++)
        if (memcmp(s + p, names + 3 * k, 3) == 0)
            m->month = k + 1;
    Py_ssize_t q = p + 3;
    int spaces = 0;
    while (q + spaces < n && s[q + spaces] == ' ' && spaces < 3)
        spaces++;
    if (spaces < 1 || spaces > 2)
        return -1;
    q += spaces;
    int k = digits(s, q, n, 2);
    if (k < 1 || k > 2)
        return -1;
    m->day = k == 1 ? s[q] - '0' : two(s + q);
    q += k;
    *has_year = 0;
    if (q + 5 < n && s[q] == ' ' && digits(s, q + 1, n, 4) == 4 && s[q + 5] == ' ') {
        *has_year = 1;
        m->year = two(s + q + 1) * 100 + two(s + q + 3);
        q += 5;
    }
    if (n - q < 9 || s[q] != ' ' || !is_digit(s[q + 1]) || !is_digit(s[q + 2]) || s[q + 3] != ':'
        || !is_digit(s[q + 4]) || !is_digit(s[q + 5]) || s[q + 6] != ':' || !is_digit(s[q + 7])
        || !is_digit(s[q + 8]))
        return -1;
    m->hour = two(s + q + 1);
    m->minute = two(s + q + 4);
    m->second = two(s + q + 7);
    q += 9;
    m->fraction_len = 0;
    m->fraction = NULL;
    m->zone_seconds = 0;
    if (q < n && s[q] == '.') {
        k = digits(s, q + 1, n, 6);
        if (k < 1 || k > 6)
            return -1;   /* no form of the rest starts with "." */
        m->fraction = s + q + 1;
        m->fraction_len = k;
        q += 1 + k;
    }
    /* (?: (?:UTC|GMT|[A-Z]{3,4}))? tried as 4 capitals, then 3, then none */
    if (q < n && s[q] == ' ') {
        int caps = 0;
        while (q + 1 + caps < n && caps < 4 && is_upper(s[q + 1 + caps]))
            caps++;
        if (caps == 4 && stamp_end(s, q + 5, n))
            return q + 5;
        if (caps >= 3 && stamp_end(s, q + 4, n))
            return q + 4;
    }
    return stamp_end(s, q, n) ? q : -1;
}

/* syslog_parse.bsd_time_us */
static int bsd_us(const stamp *m, int has_year, int now_year, double now_s, int64_t *us)
{
    if (m->month == 0)
        return 0;
    if (has_year)
        return epoch_us(m->year, m->month, m->day, m->hour, m->minute, m->second, m->fraction, m->fraction_len,
                        0, us);
    /* No year: this year, unless that is more than a day ahead. Python compares the int with the
     * float exactly: us > t holds exactly when us > floor(t). */
    double ahead = (now_s + 86400) * 1000000;
    int found = epoch_us(now_year, m->month, m->day, m->hour, m->minute, m->second, m->fraction,
                         m->fraction_len, 0, us);
    if (!found || (ahead < 9.2e18 && *us > (int64_t)floor(ahead)))
        found = epoch_us(now_year - 1, m->month, m->day, m->hour, m->minute, m->second, m->fraction,
                         m->fraction_len, 0, us);
    return found;
}

/* -- header words ----------------------------------------------------------------------------- */

typedef struct { Py_ssize_t a, b; } span;

static Py_ssize_t word(uchar *s, Py_ssize_t i, Py_ssize_t n, span *w)   /* _word */
{
    uchar *space = i < n ? memchr(s + i, ' ', n - i) : NULL;
    w->a = i;
    w->b = space ? space - s : n;
    return space ? w->b + 1 : n;
}

static inline int is_nil(uchar *s, span w) { return w.b - w.a == 1 && s[w.a] == '-'; }

/* _pid: 1 and *pid for a number below 2^32 of at most 10 digits */
static int pid_of(uchar *s, span w, long long *pid)
{
    Py_ssize_t len = w.b - w.a;
    if (len < 1 || len > 10)
        return 0;
    long long v = 0;
    for (Py_ssize_t k = w.a; k < w.b; k++) {
        if (!is_digit(s[k]))
            return 0;
        v = v * 10 + (s[k] - '0');
    }
    if (v >= 1LL << 32)
        return 0;
    *pid = v;
    return 1;
}

static inline int tag_char(unsigned c) { return !is_space(c) && c != '[' && c != ']' && c != ':'; }

/* _TAG.match at i: ([^\s\[\]:]{1,128})(?:\[([^\]\s]{0,32})\])?:(?: |$) -> end or -1 */
static Py_ssize_t match_tag(uchar *s, Py_ssize_t i, Py_ssize_t n, span *tag, span *pid)
{
    Py_ssize_t q = i;
    while (q < n && q - i <= 128 && tag_char(s[q]))
        q++;
    if (q == i || q - i > 128)
        return -1;
    tag->a = i;
    tag->b = q;
    pid->a = pid->b = 0;
    if (q < n && s[q] == '[') {
        Py_ssize_t r = q + 1;
        while (r < n && r - (q + 1) <= 32 && s[r] != ']' && !is_space(s[r]))
            r++;
        if (r - (q + 1) > 32 || r >= n || s[r] != ']')
            return -1;
        pid->a = q + 1;
        pid->b = r;
        q = r + 1;
    }
    if (q >= n || s[q] != ':')
        return -1;
    q++;
    if (q < n && s[q] == ' ')
        return q + 1;
    if (q == n || (q == n - 1 && s[q] == '\n'))
        return q;
    return -1;
}

/* -- structured data -------------------------------------------------------------------------- */

static inline int sd_name_char(unsigned c) { return c != '=' && c != ' ' && c != ']' && c != '"'; }

static Py_ssize_t sd_name(uchar *s, Py_ssize_t i, Py_ssize_t n)   /* _SD_NAME.match: its length */
{
    Py_ssize_t k = 0;
    while (i + k < n && k < 32 && sd_name_char(s[i + k]))
        k++;
    return k;
}

/* parse_structured_data at *i, text not "-" and not at its end: the elements ({} when the first
 * is malformed), *i where MSG starts, *ok; NULL on error. */
static PyObject *structured(uchar *s, Py_ssize_t *at, Py_ssize_t n, int *ok)
{
    Py_ssize_t i = *at;
    PyObject *elements = PyDict_New(), *params = NULL, *name = NULL, *value = NULL;
    char *buffer = NULL;
    if (elements == NULL)
        return NULL;
    *ok = 0;
    while (i < n && s[i] == '[') {
        Py_ssize_t start = i, len = sd_name(s, i + 1, n);
        if (len == 0) {
            *at = start;
            return elements;
        }
        if ((name = ascii_text(s + i + 1, len)) == NULL || (params = PyDict_New()) == NULL)
            goto error;
        i += 1 + len;
        while (i < n && s[i] == ' ') {
            Py_ssize_t key = i + 1, key_len = sd_name(s, key, n);
            if (key_len == 0 || key + key_len + 1 >= n || s[key + key_len] != '=' || s[key + key_len + 1] != '"')
                goto malformed;
            Py_ssize_t j = key + key_len + 2, w = 0;
            if (buffer == NULL && (buffer = PyMem_Malloc(n - j + 1)) == NULL) {   /* once: later values are shorter */
                PyErr_NoMemory();
                goto error;
            }
            while (j < n && s[j] != '"') {
                if (s[j] == '\\' && j + 1 < n && (s[j + 1] == '"' || s[j + 1] == '\\' || s[j + 1] == ']'))
                    j++;
                buffer[w++] = (char)s[j++];
            }
            if (j >= n)
                goto malformed;
            PyObject *key_text = ascii_text(s + key, key_len);
            value = key_text ? ascii_text((uchar *)buffer, w) : NULL;
            if (value == NULL || PyDict_SetItem(params, key_text, value) < 0) {
                Py_XDECREF(key_text);
                goto error;
            }
            Py_DECREF(key_text);
            Py_CLEAR(value);
            i = j + 1;
        }
        if (i >= n || s[i] != ']')
            goto malformed;
        PyObject *known = PyDict_GetItemWithError(elements, name);
        if (known != NULL) {
            if (PyDict_Update(known, params) < 0)
                goto error;
        } else if (PyErr_Occurred() || PyDict_SetItem(elements, name, params) < 0) {
            goto error;
        }
        Py_CLEAR(name);
        Py_CLEAR(params);
        i++;
        continue;
malformed:
        Py_CLEAR(name);
        Py_CLEAR(params);
        PyMem_Free(buffer);
        *at = start;
        return elements;
    }
    PyMem_Free(buffer);
    *ok = 1;
    *at = i < n && s[i] == ' ' ? i + 1 : i;
    return elements;
error:
    PyMem_Free(buffer);
    Py_XDECREF(elements);
    Py_XDECREF(params);
    Py_XDECREF(name);
    Py_XDECREF(value);
    return NULL;
}

/* -- one frame -------------------------------------------------------------------------------- */

typedef struct {
    int severity, facility, problem, has_time;
    int64_t time_us;
    long long pid;
    span host, app, procid, msgid, message;
    int host_strip;           /* RFC 3164's hostname loses its trailing colons */
    int lstrip_message;       /* RFC 5424: the spaces before MSG are not the message */
    Py_ssize_t sd;            /* where RFC 5424 STRUCTURED-DATA starts, -1 without */
} header;

static void set_pid(uchar *s, span w, header *h)
{
    h->procid.a = h->procid.b = 0;
    h->pid = 0;
    if (!pid_of(s, w, &h->pid))
        h->procid = w;
}

static void parse_rfc5424(uchar *s, Py_ssize_t i, Py_ssize_t n, header *h)
{
    span w;
    stamp m;
    i = word(s, i, n, &w);
    if (!is_nil(s, w)) {
        Py_ssize_t end = w.b > w.a ? match_rfc3339(s, w.a, w.b, &m) : -1;
        h->has_time = end == w.b && rfc3339_us(&m, &h->time_us);
        if (!h->has_time && !h->problem)
            h->problem = P_BAD_TIMESTAMP;
    }
    i = word(s, i, n, &h->host);
    i = word(s, i, n, &h->app);
    span procid;
    i = word(s, i, n, &procid);
    i = word(s, i, n, &h->msgid);
    if (is_nil(s, h->host))
        h->host.b = h->host.a;
    if (is_nil(s, h->app))
        h->app.b = h->app.a;
    if (is_nil(s, h->msgid))
        h->msgid.b = h->msgid.a;
    if (is_nil(s, procid))
        procid.b = procid.a;
    set_pid(s, procid, h);
    h->lstrip_message = 1;
    if (i < n && s[i] == '-') {
        i = i + 1 < n && s[i + 1] == ' ' ? i + 2 : i + 1;
    } else if (i < n && s[i] == '[') {
        h->sd = i;           /* parsed with the objects it makes */
    } else if (i < n) {
        if (!h->problem)
            h->problem = P_BAD_SD;
    }
    h->message.a = i;
}

static void parse_rfc3164(uchar *s, Py_ssize_t i, Py_ssize_t n, header *h, int now_year, double now_s)
{
    Py_ssize_t start = i;
    int k = digits(s, i, n, 10);   /* Cisco IOS sequence number: \d{1,10}: */
    if (k >= 1 && k <= 10 && i + k + 1 < n && s[i + k] == ':' && s[i + k + 1] == ' ')
        i += k + 2;
    if (i < n && (s[i] == '*' || s[i] == '.'))
        i++;
    stamp m;
    int has_year;
    span tag, pid;
    Py_ssize_t end = match_rfc3339(s, i, n, &m);
    if (end >= 0) {
        h->has_time = rfc3339_us(&m, &h->time_us);
    } else if ((end = match_bsd(s, i, n, &m, &has_year)) >= 0) {
        h->has_time = bsd_us(&m, has_year, now_year, now_s, &h->time_us);
    } else {
        /* A priority only: the rest is the message, perhaps with a tag. */
        Py_ssize_t tagged = match_tag(s, start, n, &tag, &pid);
        if (tagged >= 0 && (is_upper(s[tag.a]) || is_lower(s[tag.a]))) {
            h->app = tag;
            set_pid(s, pid, h);
            h->message.a = tagged;
        } else {
            h->message.a = start;
        }
        return;
    }
    if (!h->has_time && !h->problem)
        h->problem = P_BAD_TIMESTAMP;
    i = end;
    if (i < n && s[i] == ':')
        i++;
    if (i < n && s[i] == ' ')
        i++;
    Py_ssize_t tagged = match_tag(s, i, n, &tag, &pid);
    if (tagged < 0) {
        span w;
        Py_ssize_t after = word(s, i, n, &w);
        if (w.b > w.a && s[w.a] != '%') {   /* "%SYS-5-CONFIG_I:" is a Cisco message, not a host */
            h->host = w;
            h->host_strip = 1;
            i = after;
            tagged = match_tag(s, i, n, &tag, &pid);
        }
    }
    if (tagged >= 0 && s[tag.a] != '%') {
        h->app = tag;
        set_pid(s, pid, h);
        i = tagged;
    }
    h->message.a = i;
}

/* parse_syslog on an ASCII frame, up to the objects */
static void parse_header(uchar *s, Py_ssize_t n, header *h, int now_year, double now_s)
{
    memset(h, 0, sizeof *h);
    h->sd = -1;
    int value = -1, k = n > 0 && s[0] == '<' ? digits(s, 1, n, 3) : 0;
    Py_ssize_t i = 0;
    if (k >= 1 && k <= 3 && 1 + k < n && s[1 + k] == '>') {
        value = 0;
        for (int d = 0; d < k; d++)
            value = value * 10 + (s[1 + d] - '0');
        if (value > 191 || (k > 1 && s[1] == '0')) {
            value = -1;
            h->problem = P_BAD_PRIORITY;
        } else {
            i = 2 + k;
        }
    } else {
        h->problem = P_NO_PRIORITY;
    }
    if (value < 0)
        value = 13;   /* user.notice, RFC 3164 §4.3.3 */
    h->facility = value >> 3;
    h->severity = value & 7;
    if (!h->problem && n - i >= 2 && s[i] == '1' && s[i + 1] == ' ')
        parse_rfc5424(s, i + 2, n, h);
    else
        parse_rfc3164(s, i, n, h, now_year, now_s);
    h->message.b = n;
}

/* to_record's fields and columns from structured data (a dict of dicts) */
static int sd_fields(PyObject *elements, PyObject *fields, PyObject *columns[3])
{
    PyObject *sd_id, *params, *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(elements, &pos, &sd_id, &params)) {
        PyObject *rest = PyDict_New();
        if (rest == NULL)
            return -1;
        Py_ssize_t at = 0;
        while (PyDict_Next(params, &at, &key, &value)) {
            PyObject *column = PyDict_GetItemWithError(column_keys, key);
            int slot = column == NULL ? -1 : column == c_request_id ? 0 : column == c_user ? 1 : 2;
            if (column == NULL && PyErr_Occurred()) {
                Py_DECREF(rest);
                return -1;
            }
            if (slot >= 0 && PyUnicode_GET_LENGTH(columns[slot]) == 0) {
                Py_INCREF(value);
                Py_SETREF(columns[slot], value);
            } else if (PyDict_SetItem(rest, key, value) < 0) {
                Py_DECREF(rest);
                return -1;
            }
        }
        int failed = PyDict_GET_SIZE(rest) && PyDict_SetItem(fields, sd_id, rest) < 0;
        Py_DECREF(rest);
        if (failed)
            return -1;
    }
    return 0;
}

static Py_ssize_t message_end(uchar *s, Py_ssize_t a, Py_ssize_t b)   /* rstrip("\r\n\0") */
{
    while (b > a && (s[b - 1] == '\r' || s[b - 1] == '\n' || s[b - 1] == 0))
        b--;
    return b;
}

/* fields[key] = the text of w, when it is not empty */
static int set_text(PyObject *fields, PyObject *key, uchar *s, span w)
{
    if (w.b <= w.a)
        return 0;
    PyObject *text = ascii_text(s + w.a, w.b - w.a);
    int failed = text == NULL || PyDict_SetItem(fields, key, text) < 0;
    Py_XDECREF(text);
    return failed ? -1 : 0;
}

/* The Record of an ASCII frame; *problem set; *chars the message's length. NULL on error. */
static PyObject *ascii_record(uchar *s, Py_ssize_t n, PyObject *position, PyObject *flags, PyObject *read_us,
                              int now_year, double now_s, int *problem, Py_ssize_t *chars)
{
    header h;
    parse_header(s, n, &h, now_year, now_s);
    PyObject *fields = PyDict_New(), *elements = NULL, *record = NULL;
    PyObject *columns[3] = {empty, empty, empty};
    PyObject *items[8] = {NULL};
    Py_INCREF(empty);
    Py_INCREF(empty);
    Py_INCREF(empty);
    if (fields == NULL || PyDict_SetItem(fields, k_facility, PyTuple_GET_ITEM(facilities, h.facility)) < 0)
        goto done;
    if (set_text(fields, k_msgid, s, h.msgid) < 0 || set_text(fields, k_procid, s, h.procid) < 0)
        goto done;
    if (h.sd >= 0) {
        int ok;
        Py_ssize_t at = h.sd;
        if ((elements = structured(s, &at, n, &ok)) == NULL || sd_fields(elements, fields, columns) < 0)
            goto done;
        if (!ok && !h.problem)
            h.problem = P_BAD_SD;
        h.message.a = at;
    }
    Py_ssize_t a = h.message.a, b = message_end(s, a, h.message.b);
    if (h.lstrip_message)
        while (a < b && s[a] == ' ')
            a++;
    Py_ssize_t host_end = h.host.b;
    if (h.host_strip)
        while (host_end > h.host.a && s[host_end - 1] == ':')
            host_end--;
    items[0] = h.has_time ? PyLong_FromLongLong(h.time_us) : (Py_INCREF(Py_None), Py_None);
    items[1] = PyLong_FromLong(h.severity);
    items[2] = ascii_text(s + a, b - a);
    items[3] = columns[0];
    items[4] = columns[1];
    items[5] = columns[2];
    columns[0] = columns[1] = columns[2] = NULL;
    items[6] = fields;
    fields = NULL;
    items[7] = ascii_text(s + h.host.a, host_end - h.host.a);
    PyObject *parsed = NULL;
    int complete = 1;
    for (int k = 0; k < 8; k++)
        complete &= items[k] != NULL;
    if (complete && (parsed = parsed_type->tp_alloc(parsed_type, 8)) != NULL) {
        for (int k = 0; k < 8; k++) {
            PyTuple_SET_ITEM(parsed, k, items[k]);
            items[k] = NULL;
        }
    }
    if (parsed == NULL)
        goto done;
    *problem = h.problem;
    *chars = b - a;
    PyObject *app = ascii_text(s + h.app.a, h.app.b - h.app.a), *pid = app ? PyLong_FromLongLong(h.pid) : NULL;
    if (pid == NULL || (record = record_type->tp_alloc(record_type, 6)) == NULL) {
        Py_XDECREF(app);
        Py_XDECREF(pid);
        Py_DECREF(parsed);
        goto done;
    }
    PyObject *parts[6] = {position, parsed, app, pid, flags, read_us};
    Py_INCREF(position);
    Py_INCREF(flags);
    Py_INCREF(read_us);
    for (int k = 0; k < 6; k++)
        PyTuple_SET_ITEM(record, k, parts[k]);
done:
    for (int k = 0; k < 8; k++)
        Py_XDECREF(items[k]);
    for (int k = 0; k < 3; k++)
        Py_XDECREF(columns[k]);
    Py_XDECREF(fields);
    Py_XDECREF(elements);
    return record;
}

/* syslog.cut_utf8: the length without the start of a character a cut split */
static Py_ssize_t cut_utf8(uchar *s, Py_ssize_t len)
{
    Py_ssize_t i = len - 1;
    int continuation = 0;
    while (i >= 0 && continuation < 3 && (s[i] & 0xC0) == 0x80) {
        i--;
        continuation++;
    }
    if (i >= 0 && s[i] >= 0xC0 && s[i] <= 0xF7) {
        int needed = s[i] < 0xE0 ? 2 : s[i] < 0xF0 ? 3 : 4;
        if (continuation + 1 < needed)
            return i;
    }
    return len;
}

/* -- framing and the call --------------------------------------------------------------------- */

typedef struct {
    PyObject *records, *fallback, *read_us, *flag_plain, *flag_cut;
    long long position;
    Py_ssize_t chars;
    long long counts[P_COUNT];
    int now_year;
    double now_s;
} run;

/* One frame (cut already at max_bytes when `truncated`) onto the records. */
static int frame(run *r, uchar *s, Py_ssize_t len, int truncated)
{
    if (truncated)
        len = cut_utf8(s, len);
    Py_ssize_t k = 0;
    while (k < len && (s[k] == '\r' || s[k] == '\n' || s[k] == 0 || s[k] == ' '))
        k++;
    if (k == len) {
        r->counts[P_EMPTY]++;
        return 0;
    }
    if (truncated)
        r->counts[P_TOO_LONG]++;
    int ascii = 1;
    for (k = 0; k < len && ascii; k++)
        ascii = s[k] < 0x80;
    PyObject *position = PyLong_FromLongLong(r->position), *record = NULL;
    if (position == NULL)
        return -1;
    if (ascii) {
        int problem = P_NONE;
        Py_ssize_t chars = 0;
        record = ascii_record(s, len, position, truncated ? r->flag_cut : r->flag_plain, r->read_us, r->now_year,
                              r->now_s, &problem, &chars);
        r->counts[problem]++;
        r->chars += chars;
    } else {
        /* fallback(frame, truncated, position) -> (Record, problem index, message length) */
        PyObject *data = PyBytes_FromStringAndSize((const char *)s, len);
        PyObject *answer = data ? PyObject_CallFunction(r->fallback, "OiO", data, truncated, position) : NULL;
        Py_XDECREF(data);
        int problem;
        Py_ssize_t chars;
        if (answer != NULL && PyArg_ParseTuple(answer, "Oin", &record, &problem, &chars)
            && problem >= 0 && problem < P_COUNT) {
            Py_INCREF(record);
            r->counts[problem]++;
            r->chars += chars;
        } else if (answer != NULL && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "the syslog fallback gave no (Record, problem, chars)");
        }
        Py_XDECREF(answer);
    }
    Py_DECREF(position);
    if (record == NULL)
        return -1;
    r->position++;
    int failed = PyList_Append(r->records, record) < 0;
    Py_DECREF(record);
    return failed ? -1 : 0;
}

/* FrameSplitter._lines on the buffer; returns bytes consumed or -1 */
static Py_ssize_t lines(run *r, uchar *s, Py_ssize_t n, Py_ssize_t max, int *skip_line)
{
    Py_ssize_t start = 0;
    for (;;) {
        uchar *newline = start < n ? memchr(s + start, '\n', n - start) : NULL;
        if (newline == NULL)
            break;
        Py_ssize_t end = newline - s;
        if (*skip_line)
            *skip_line = 0;
        else if (frame(r, s + start, end - start > max ? max : end - start, end - start > max) < 0)
            return -1;
        start = end + 1;
    }
    if (n - start > max) {
        if (!*skip_line && frame(r, s + start, max, 1) < 0)
            return -1;
        *skip_line = 1;
        return n;
    }
    return start;
}

/* FrameSplitter._octet on the buffer; returns bytes consumed or -1; *bad set where the framing broke */
static Py_ssize_t octets(run *r, uchar *s, Py_ssize_t n, Py_ssize_t max, long long *skip, Py_ssize_t *bad)
{
    Py_ssize_t start = 0;
    *bad = -1;
    for (;;) {
        if (*skip) {
            long long skipped = *skip < n - start ? *skip : n - start;
            *skip -= skipped;
            start += skipped;
            if (*skip)
                break;
        }
        while (start < n && (s[start] == '\r' || s[start] == '\n'))
            start++;
        if (start == n)
            break;
        Py_ssize_t limit = n - start < MAX_LENGTH_DIGITS + 1 ? n : start + MAX_LENGTH_DIGITS + 1;
        uchar *space = memchr(s + start, ' ', limit - start);
        if (space == NULL) {
            int all = 1;
            for (Py_ssize_t k = start; k < n && all; k++)
                all = is_digit(s[k]);
            if (n - start > MAX_LENGTH_DIGITS || !all)
                *bad = start;
            break;
        }
        Py_ssize_t body = space - s + 1, count = body - 1 - start;
        int all = count > 0 && s[start] != '0';
        long long length = 0;
        for (Py_ssize_t k = start; k < body - 1 && all; k++) {
            all = is_digit(s[k]);
            length = length * 10 + (s[k] - '0');
        }
        if (!all) {
            *bad = start;
            break;
        }
        if (length > max) {
            if (n - body < max)
                break;   /* wait for the part that is kept */
            if (frame(r, s + body, max, 1) < 0)
                return -1;
            start = body + max;
            *skip = length - max;
            continue;
        }
        if (n - body < length)
            break;
        if (frame(r, s + body, length, 0) < 0)
            return -1;
        start = body + length;
    }
    return *bad >= 0 ? n : start;
}

/* records(buffer, mode, max_bytes, skip, skip_line, position, read_us, now_year, now_s, flag_cut, fallback)
 *   -> (records, consumed, skip, skip_line, bad bytes or None, counts, message chars) */
static PyObject *records(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer buffer;
    int mode, skip_line;
    Py_ssize_t max;
    long long skip;
    run r = {0};
    if (record_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_syslog_native.init was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*inLpLOidOO", &buffer, &mode, &max, &skip, &skip_line, &r.position, &r.read_us,
                          &r.now_year, &r.now_s, &r.flag_cut, &r.fallback))
        return NULL;
    PyObject *result = NULL;
    uchar *s = buffer.buf;
    Py_ssize_t n = buffer.len, consumed, bad = -1;
    if (max < 1) {
        PyErr_SetString(PyExc_ValueError, "max_bytes must be at least 1");
        goto done;
    }
    r.records = PyList_New(0);
    r.flag_plain = PyLong_FromLong(0);
    if (r.records == NULL || r.flag_plain == NULL)
        goto done;
    if (mode == MODE_OCTET)
        consumed = octets(&r, s, n, max, &skip, &bad);
    else if (mode == MODE_LF)
        consumed = lines(&r, s, n, max, &skip_line);
    else
        consumed = frame(&r, s, n > max ? max : n, n > max) < 0 ? -1 : n;
    if (consumed < 0)
        goto done;
    PyObject *counts = PyTuple_New(P_COUNT);
    if (counts == NULL)
        goto done;
    for (int k = 0; k < P_COUNT; k++) {
        PyObject *count = PyLong_FromLongLong(r.counts[k]);
        if (count == NULL) {
            Py_DECREF(counts);
            goto done;
        }
        PyTuple_SET_ITEM(counts, k, count);
    }
    Py_ssize_t seen = bad < 0 ? 0 : (n - bad < MAX_LENGTH_DIGITS + 1 ? n - bad : MAX_LENGTH_DIGITS + 1);
    PyObject *bad_bytes = bad < 0 ? (Py_INCREF(Py_None), Py_None) : PyBytes_FromStringAndSize((const char *)s + bad, seen);
    if (bad_bytes != NULL)
        result = Py_BuildValue("OnLNNNn", r.records, consumed, skip, PyBool_FromLong(skip_line), bad_bytes, counts,
                               r.chars);
    else
        Py_DECREF(counts);
done:
    Py_XDECREF(r.records);
    Py_XDECREF(r.flag_plain);
    PyBuffer_Release(&buffer);
    return result;
}

static PyObject *init(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *record, *parsed, *names, *keys;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyType_Type, &record, &PyType_Type, &parsed, &PyTuple_Type, &names,
                          &PyDict_Type, &keys))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)record, &PyTuple_Type) || !PyType_IsSubtype((PyTypeObject *)parsed, &PyTuple_Type)
        || PyTuple_GET_SIZE(names) != 24) {
        PyErr_SetString(PyExc_TypeError, "init(Record, Parsed, 24 facility names, column keys)");
        return NULL;
    }
    if (empty == NULL) {
        empty = PyUnicode_New(0, 127);
        k_facility = PyUnicode_InternFromString("facility");
        k_msgid = PyUnicode_InternFromString("msgid");
        k_procid = PyUnicode_InternFromString("procid");
        c_request_id = PyUnicode_InternFromString("request_id");
        c_user = PyUnicode_InternFromString("user");
        c_action = PyUnicode_InternFromString("action");
        if (!empty || !k_facility || !k_msgid || !k_procid || !c_request_id || !c_user || !c_action)
            return NULL;
    }
    /* the column names as the interned objects compared by identity in sd_fields */
    PyObject *interned = PyDict_New(), *key, *value;
    Py_ssize_t pos = 0;
    if (interned == NULL)
        return NULL;
    while (PyDict_Next(keys, &pos, &key, &value)) {
        PyObject *column = PyUnicode_Check(value) ? (PyUnicode_CompareWithASCIIString(value, "request_id") == 0 ? c_request_id
                           : PyUnicode_CompareWithASCIIString(value, "user") == 0 ? c_user
                           : PyUnicode_CompareWithASCIIString(value, "action") == 0 ? c_action : NULL) : NULL;
        if (column == NULL || PyDict_SetItem(interned, key, column) < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "column keys map to request_id, user or action");
            Py_DECREF(interned);
            return NULL;
        }
    }
    Py_INCREF(record);
    Py_INCREF(parsed);
    Py_INCREF(names);
    Py_XSETREF(record_type, (PyTypeObject *)record);
    Py_XSETREF(parsed_type, (PyTypeObject *)parsed);
    Py_XSETREF(facilities, names);
    Py_XSETREF(column_keys, interned);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", init, METH_VARARGS, "init(Record, Parsed, facility names, {sd key: column})"},
    {"records", records, METH_VARARGS,
     "records(buffer, mode, max_bytes, skip, skip_line, position, read_us, now_year, now_s, flag_cut, fallback)"
     " -> (records, consumed, skip, skip_line, bad or None, counts, message chars)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_syslog_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__syslog_native(void) { return PyModule_Create(&module); }
