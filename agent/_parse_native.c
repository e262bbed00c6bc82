/* The agent's hot path in C: agent/parse.py's parse_text for ASCII lines, the file source's
 * split of an ASCII block into Records around it (ascii_records), and the batcher's columns of a
 * Chunk from Records (columns).
 *
 * parse_text(line) returns the same Parsed that agent.parse.parse_text returns, or None when the
 * line needs the Python code: it is not ASCII, starts with "{" (JSON), starts with a syslog
 * stamp (whose year depends on today's date), or carries its time only in a key=value pair
 * (parse_time_value's many forms). Callers fall back to Python on None, so both paths give the
 * same events; tests/unit/test_parse_native.py holds them to it on random and hostile lines.
 *
 * Every regular expression of parse.py is matched here by hand with the same result, including
 * where the regex backtracks; the comments name the pattern each function stands for. ASCII
 * only keeps the character classes simple: \d is [0-9], \w is [A-Za-z0-9_], and \s (and
 * str.isspace, str.strip) is space, \t \n \v \f \r and the separators \x1c-\x1f.
 *
 * The Parsed type, the level names and the key targets come from Python at init(), so there is
 * one source of truth for them (agent/parse.py, common/levels.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_civil_days.h"

static PyTypeObject *parsed_type = NULL;  /* agent.parse.Parsed */
static PyObject *levels = NULL;           /* lower-case name -> int (common.levels._ALIASES) */
static PyObject *targets = NULL;          /* key -> target index, as below */

enum { T_REQUEST_ID, T_USER, T_ACTION, T_LEVEL, T_TIME, T_MESSAGE, T_HOST, T_COUNT };

typedef const unsigned char uchar;

static inline int is_digit(unsigned c) { return c >= '0' && c <= '9'; }
static inline int is_alpha(unsigned c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
static inline int is_space(unsigned c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }
static inline int is_word(unsigned c) { return is_alpha(c) || is_digit(c) || c == '_'; }
static inline int two(uchar *s) { return (s[0] - '0') * 10 + (s[1] - '0'); }

static Py_ssize_t lstrip(uchar *s, Py_ssize_t p, Py_ssize_t n)
{
    while (p < n && is_space(s[p]))
        p++;
    return p;
}

/* _ISO: (\d{4}[-/]\d{2}[-/]\d{2})[T ](\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|z|[+-]\d{2}:?\d{2})?
 * matched at p. Returns the end, or -1. */
typedef struct {
    Py_ssize_t date, clock, frac, frac_len, tz, tz_len;
} iso_match;

static Py_ssize_t match_iso(uchar *s, Py_ssize_t p, Py_ssize_t n, iso_match *m)
{
    static const char shape[] = "dddd-dd-dd dd:dd:dd";
    if (n - p < 19)
        return -1;
    for (int i = 0; i < 19; i++) {
        unsigned c = s[p + i];
        switch (shape[i]) {
        case 'd': if (!is_digit(c)) return -1; break;
        case '-': if (c != '-' && c != '/') return -1; break;
        case ' ': if (c != 'T' && c != ' ') return -1; break;
        case ':': if (c != ':') return -1; break;
        }
    }
    m->date = p;
    m->clock = p + 11;
    m->frac = m->tz = -1;
    m->frac_len = m->tz_len = 0;
    Py_ssize_t e = p + 19;
    if (e + 1 < n && (s[e] == '.' || s[e] == ',') && is_digit(s[e + 1])) {
        Py_ssize_t f = e + 1, k = 0;
        while (f + k < n && k < 9 && is_digit(s[f + k]))
            k++;
        m->frac = f;
        m->frac_len = k;
        e = f + k;
    }
    if (e < n && (s[e] == 'Z' || s[e] == 'z')) {
        m->tz = e;
        m->tz_len = 1;
        e += 1;
    } else if (e + 2 < n && (s[e] == '+' || s[e] == '-') && is_digit(s[e + 1]) && is_digit(s[e + 2])) {
        if (e + 5 < n + 0 && s[e + 3] == ':' && is_digit(s[e + 4]) && is_digit(s[e + 5])) {
            m->tz = e;
            m->tz_len = 6;
            e += 6;
        } else if (e + 4 < n && is_digit(s[e + 3]) && is_digit(s[e + 4])) {
            m->tz = e;
            m->tz_len = 5;
            e += 5;
        }
    }
    return e;
}

/* iso_match_to_us: 0 and *us set, or -1 where datetime.fromisoformat raises ValueError. */
static int iso_to_us(uchar *s, const iso_match *m, int64_t *us)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    uchar *d = s + m->date, *c = s + m->clock;
    int year = two(d) * 100 + two(d + 2), month = two(d + 5), day = two(d + 8);
    int hour = two(c), minute = two(c + 3), second = two(c + 6);
    if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59)
        return -1;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[month - 1] + (month == 2 && leap))
        return -1;
    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
    if (m->tz_len >= 5) {
        uchar *t = s + m->tz + 1;
        int hh = two(t), mm = two(t + (m->tz_len == 6 ? 3 : 2));
        int64_t offset = hh * 3600 + mm * 60;
        seconds -= s[m->tz] == '-' ? -offset : offset;
    }
    int64_t micros = 0;
    for (int i = 0; i < 6; i++)
        micros = micros * 10 + (i < m->frac_len ? s[m->frac + i] - '0' : 0);
    *us = seconds * 1000000 + micros;
    return 0;
}

/* \s or end of text, as `(?=\s|$)` sees it at q. */
static inline int space_or_end(uchar *s, Py_ssize_t q, Py_ssize_t n) { return q == n || is_space(s[q]); }

/* _EPOCH: (\d{10}|\d{13})(?:\.(\d{1,9}))?(?=\s|$) at 0. Returns the end or -1. */
static Py_ssize_t match_epoch(uchar *s, Py_ssize_t n, int64_t *us)
{
    static const int widths[] = {10, 13};
    for (int w = 0; w < 2; w++) {
        Py_ssize_t width = widths[w];
        if (n < width)
            return -1;
        int ok = 1;
        for (Py_ssize_t i = 0; i < width && ok; i++)
            ok = is_digit(s[i]);
        if (!ok)
            return -1;
        Py_ssize_t e = width, frac = -1, k = 0;
        if (e + 1 < n && s[e] == '.' && is_digit(s[e + 1])) {
            while (e + 1 + k < n && k < 9 && is_digit(s[e + 1 + k]))
                k++;
            if (space_or_end(s, e + 1 + k, n))
                frac = e + 1;   /* fewer digits would leave a digit next: only the longest can end here */
        }
        if (frac < 0) {
            k = 0;
            if (!space_or_end(s, e, n))
                continue;
        } else {
            e = frac + k;
        }
        int64_t whole = 0, micros = 0;
        for (Py_ssize_t i = 0; i < width; i++)
            whole = whole * 10 + (s[i] - '0');
        for (int i = 0; i < 6; i++)
            micros = micros * 10 + (i < k ? s[frac + i] - '0' : 0);
        *us = width == 10 ? whole * 1000000 + micros : whole * 1000 + micros / 1000;
        return e;
    }
    return -1;
}

/* _SYSLOG: ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}:\d{2}:\d{2}) with a known month at 0. */
static int looks_syslog(uchar *s, Py_ssize_t n)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    if (n < 3 || !(s[0] >= 'A' && s[0] <= 'Z') || !(s[1] >= 'a' && s[1] <= 'z') || !(s[2] >= 'a' && s[2] <= 'z'))
        return 0;
    Py_ssize_t p = 3, spaces = 0;
    while (p < n && s[p] == ' ' && spaces < 2)
        p++, spaces++;
    if (!spaces)
        return 0;
    /* ` {1,2}(\d{1,2}) ` with backtracking: the day is one or two digits after one or two spaces. */
    int found = 0;
    for (Py_ssize_t sp = spaces; sp >= 1 && !found; sp--) {
        Py_ssize_t q = 3 + sp;
        for (int dd = 2; dd >= 1 && !found; dd--) {
            Py_ssize_t r = q;
            int ok = 1;
            for (int i = 0; i < dd && ok; i++, r++)
                ok = r < n && is_digit(s[r]);
            if (!ok || !(r < n && s[r] == ' '))
                continue;
            r++;
            if (n - r >= 8 && is_digit(s[r]) && is_digit(s[r + 1]) && s[r + 2] == ':' && is_digit(s[r + 3])
                && is_digit(s[r + 4]) && s[r + 5] == ':' && is_digit(s[r + 6]) && is_digit(s[r + 7]))
                found = 1;
        }
    }
    if (!found)
        return 0;
    for (int i = 0; i < 36; i += 3)
        if (memcmp(s, months + i, 3) == 0)
            return 1;
    return 0;
}

/* lookup_level over s[p:e] (or None): the lower-cased name in common.levels._ALIASES. */
static PyObject *level_of(uchar *s, Py_ssize_t p, Py_ssize_t e)
{
    char name[64];
    Py_ssize_t len = e - p;
    if (len <= 0 || len >= (Py_ssize_t)sizeof(name))
        Py_RETURN_NONE;
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned c = s[p + i];
        name[i] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
    }
    PyObject *key = PyUnicode_FromStringAndSize(name, len);
    if (key == NULL)
        return NULL;
    PyObject *found = PyDict_GetItemWithError(levels, key);
    Py_DECREF(key);
    if (found == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    Py_INCREF(found);
    return found;
}

/* After the level word: \]?:?(?:\s+|$). Returns the end, or -1. */
static Py_ssize_t level_tail(uchar *s, Py_ssize_t e, Py_ssize_t n)
{
    for (int bracket = 1; bracket >= 0; bracket--) {
        Py_ssize_t q = e;
        if (bracket) {
            if (!(q < n && s[q] == ']'))
                continue;
            q++;
        }
        for (int colon = 1; colon >= 0; colon--) {
            Py_ssize_t r = q;
            if (colon) {
                if (!(r < n && s[r] == ':'))
                    continue;
                r++;
            }
            if (r < n && is_space(s[r])) {
                while (r < n && is_space(s[r]))
                    r++;
                return r;
            }
            if (r == n)
                return r;
        }
    }
    return -1;
}

/* _LEADING_LEVEL: \[?([A-Za-z]{3,13}|[0-7])\]?:?(?:\s+|$) at p: the end and the word's span. */
static Py_ssize_t match_level(uchar *s, Py_ssize_t p, Py_ssize_t n, Py_ssize_t *ws, Py_ssize_t *we)
{
    Py_ssize_t q = p;
    if (q < n && s[q] == '[')
        q++;
    Py_ssize_t e = q;
    while (e < n && is_alpha(s[e]))
        e++;
    if (e - q >= 3 && e - q <= 13) {
        Py_ssize_t end = level_tail(s, e, n);
        if (end >= 0) {
            *ws = q, *we = e;
            return end;
        }
    } else if (e == q && q < n && s[q] >= '0' && s[q] <= '7') {
        Py_ssize_t end = level_tail(s, q + 1, n);
        if (end >= 0) {
            *ws = q, *we = q + 1;
            return end;
        }
    }
    return -1;
}

/* _unquote over s[p:e]: a "..."-wrapped value loses its quotes, then \" -> " and \\ -> \ in turn. */
static PyObject *unquote(uchar *s, Py_ssize_t p, Py_ssize_t e)
{
    if (!(e - p >= 2 && s[p] == '"' && s[e - 1] == '"'))
        return PyUnicode_FromStringAndSize((const char *)s + p, e - p);
    p++, e--;
    if (memchr(s + p, '\\', e - p) == NULL)
        return PyUnicode_FromStringAndSize((const char *)s + p, e - p);
    /* str.replace('\\"', '"') then .replace('\\\\', '\\'): two left-to-right passes. */
    char *one = PyMem_Malloc(e - p + 1), *two_ = PyMem_Malloc(e - p + 1);
    if (one == NULL || two_ == NULL) {
        PyMem_Free(one);
        PyMem_Free(two_);
        return PyErr_NoMemory();
    }
    Py_ssize_t a = 0, b = 0;
    for (Py_ssize_t i = p; i < e; i++) {
        if (s[i] == '\\' && i + 1 < e && s[i + 1] == '"') {
            one[a++] = '"';
            i++;
        } else {
            one[a++] = (char)s[i];
        }
    }
    for (Py_ssize_t i = 0; i < a; i++) {
        if (one[i] == '\\' && i + 1 < a && one[i + 1] == '\\') {
            two_[b++] = '\\';
            i++;
        } else {
            two_[b++] = one[i];
        }
    }
    PyObject *value = PyUnicode_FromStringAndSize(two_, b);
    PyMem_Free(one);
    PyMem_Free(two_);
    return value;
}

/* The key strings of key=value pairs, kept once made (a direct-mapped cache of short keys): a
 * source repeats a few keys on every line, and a str made again for each cost its allocation and
 * its hash in two dict lookups. Keys are ASCII (the pattern's characters). */
#define KEY_SLOTS 64
#define KEY_MAX 32
static PyObject *key_slots[KEY_SLOTS];

static PyObject *pair_key(const char *s, Py_ssize_t n)
{
    if (n > KEY_MAX)
        return PyUnicode_FromStringAndSize(s, n);
    uint32_t h = 2166136261u;    /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    PyObject **slot = &key_slots[h % KEY_SLOTS];
    if (*slot != NULL && PyUnicode_GET_LENGTH(*slot) == n && memcmp(PyUnicode_1BYTE_DATA(*slot), s, n) == 0) {
        Py_INCREF(*slot);
        return *slot;
    }
    PyObject *key = PyUnicode_FromStringAndSize(s, n);
    if (key != NULL && PyUnicode_IS_COMPACT_ASCII(key)) {
        Py_INCREF(key);
        Py_XSETREF(*slot, key);
    }
    return key;
}

/* _KV.findall over s[p:n] into `pairs` (later values replace earlier ones, as in the dict display):
 * (?<![A-Za-z_@])([A-Za-z_@][\w.@-]*)=("(?:[^"\\]|\\.)*"|[^\s,;]+) */
static int scan_pairs(uchar *s, Py_ssize_t start, Py_ssize_t n, PyObject *pairs)
{
    Py_ssize_t p = start;
    while (p < n) {
        unsigned c = s[p];
        int key_start = is_alpha(c) || c == '_' || c == '@';
        if (!key_start || (p > start && (is_alpha(s[p - 1]) || s[p - 1] == '_' || s[p - 1] == '@'))) {
            p++;
            continue;
        }
        Py_ssize_t k = p + 1;
        while (k < n && (is_word(s[k]) || s[k] == '.' || s[k] == '@' || s[k] == '-'))
            k++;
        if (!(k < n && s[k] == '=')) {
            p++;
            continue;
        }
        Py_ssize_t v = k + 1, end = -1;
        if (v < n && s[v] == '"') {
            Py_ssize_t j = v + 1;
            while (j < n) {
                if (s[j] == '"') {
                    end = j + 1;
                    break;
                }
                if (s[j] == '\\') {
                    if (j + 1 < n && s[j + 1] != '\n') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j++;
            }
        }
        if (end < 0) {
            Py_ssize_t j = v;
            while (j < n && !is_space(s[j]) && s[j] != ',' && s[j] != ';')
                j++;
            if (j == v) {
                p++;
                continue;
            }
            end = j;
        }
        PyObject *key = pair_key((const char *)s + p, k - p);
        PyObject *value = key ? unquote(s, v, end) : NULL;
        int failed = value == NULL || PyDict_SetItem(pairs, key, value) < 0;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (failed)
            return -1;
        p = end;
    }
    return 0;
}

static PyObject *text_or_empty(PyObject *value)
{
    if (value == NULL)
        return PyUnicode_FromStringAndSize("", 0);
    Py_INCREF(value);
    return value;
}

/* _level_of(str): lookup_level(value.strip()). */
static PyObject *level_of_value(PyObject *value)
{
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(value, &n);
    if (s == NULL)
        return NULL;
    Py_ssize_t p = 0, e = n;
    while (p < e && is_space((uchar)s[p]))
        p++;
    while (e > p && is_space((uchar)s[e - 1]))
        e--;
    return level_of((uchar *)s, p, e);
}

/* Untrack a new tuple from the cycle collector when none of its items is tracked (str, int, None,
 * and a fields dict of str to str, which a dict keeps untracked): no cycle can pass through it.
 * The collector untracks such tuples itself, but only when it walks them, and a block's thousands
 * of Records and Parseds made it walk them over and over (0.3-0.5 µs a line). Sound as long as
 * nobody puts a container into a parsed line's fields dict, which nothing does (file.py replaces
 * the dict, never changes it). */
static void untrack_if_atomic(PyObject *tuple)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (PyObject_IS_GC(item) && PyObject_GC_IsTracked(item))
            return;
    }
    PyObject_GC_UnTrack(tuple);
}

static PyObject *build(PyObject *time_us, PyObject *level, PyObject *message, PyObject *known[T_COUNT],
                       PyObject *fields)
{
    PyObject *items[8] = {time_us, level, message, text_or_empty(known[T_REQUEST_ID]),
                          text_or_empty(known[T_USER]), text_or_empty(known[T_ACTION]), fields,
                          text_or_empty(known[T_HOST])};
    PyObject *parsed = NULL;
    if (items[3] && items[4] && items[5] && items[7])
        parsed = parsed_type->tp_alloc(parsed_type, 8);
    if (parsed == NULL) {
        for (int i = 3; i < 8; i++)
            if (i != 6)
                Py_XDECREF(items[i]);
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        if (i < 3 || i == 6)
            Py_INCREF(items[i]);
        PyTuple_SET_ITEM(parsed, i, items[i]);
    }
    untrack_if_atomic(parsed);
    return parsed;
}

/* What parse_core finds before it makes any object: the time, the leading level word, where the
 * message starts — pure C, so a block's lines are scanned with the GIL released. */
typedef struct {
    int python;                 /* agent/parse.py must decide (JSON, a syslog stamp) */
    int has_time;
    int64_t us;
    Py_ssize_t rest;            /* the message's start after the time */
    Py_ssize_t level_end, ws, we;   /* the level pattern's end (-1: none) and its word */
} head_scan;

static void scan_head(uchar *s, Py_ssize_t n, head_scan *h)
{
    memset(h, 0, sizeof(*h));
    h->level_end = -1;
    if (n > 0 && s[0] == '{') {
        h->python = 1;   /* maybe JSON: parse_auto's business */
        return;
    }
    iso_match m;
    Py_ssize_t e = match_iso(s, 0, n, &m);
    if (e >= 0) {
        if (iso_to_us(s, &m, &h->us) == 0) {
            h->has_time = 1;
            h->rest = lstrip(s, e, n);
        }
    } else if (n > 0 && s[0] == '[') {
        e = match_iso(s, 1, n, &m);
        if (e >= 0 && e < n && s[e] == ']' && iso_to_us(s, &m, &h->us) == 0) {
            h->has_time = 1;
            h->rest = lstrip(s, e + 1, n);
        }
    } else if (n > 0 && is_digit(s[0])) {
        e = match_epoch(s, n, &h->us);
        if (e >= 0) {
            h->has_time = 1;
            h->rest = lstrip(s, e, n);
        }
    } else if (looks_syslog(s, n)) {
        h->python = 1;   /* the year comes from today's date: parse.py decides */
        return;
    }
    h->level_end = match_level(s, h->rest, n, &h->ws, &h->we);
}

/* The Parsed of the ASCII text s[0:n] from its head scan (`line` is that text as a str, or NULL
 * to make one), or None where Python must decide. */
static PyObject *parse_scanned(uchar *s, Py_ssize_t n, PyObject *line, const head_scan *h)
{
    if (h->python)
        Py_RETURN_NONE;
    int has_time = h->has_time;
    int64_t us = h->us;
    Py_ssize_t rest = h->rest;
    PyObject *level = Py_None;
    Py_INCREF(level);
    if (h->level_end >= 0) {
        PyObject *found = level_of(s, h->ws, h->we);
        if (found == NULL) {
            Py_DECREF(level);
            return NULL;
        }
        if (found != Py_None) {
            Py_SETREF(level, found);
            rest = h->level_end;
        } else {
            Py_DECREF(found);
        }
    }

    PyObject *time_us = has_time ? PyLong_FromLongLong(us) : (Py_INCREF(Py_None), Py_None);
    PyObject *message = NULL;
    if (time_us != NULL)
        message = line ? PyUnicode_Substring(line, rest, n)
                       : PyUnicode_FromStringAndSize((const char *)s + rest, n - rest);
    PyObject *known[T_COUNT] = {NULL};
    PyObject *result = NULL, *pairs = NULL, *fields = NULL;
    if (message == NULL)
        goto done;
    if (memchr(s + rest, '=', n - rest) == NULL) {
        result = build(time_us, level, message, known, Py_None);
        goto done;
    }
    pairs = PyDict_New();
    if (pairs == NULL || scan_pairs(s, rest, n, pairs) < 0)
        goto done;
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(pairs, &pos, &key, &value)) {
        PyObject *target = PyDict_GetItemWithError(targets, key);
        if (target == NULL && PyErr_Occurred())
            goto done;
        long index = target ? PyLong_AsLong(target) : -1;
        if (index >= 0 && index < T_COUNT && known[index] == NULL) {
            known[index] = value;   /* borrowed from pairs, which lives until done */
        } else {
            if (fields == NULL && (fields = PyDict_New()) == NULL)
                goto done;
            if (PyDict_SetItem(fields, key, value) < 0)
                goto done;
        }
    }
    if (!has_time && known[T_TIME] != NULL)
        goto fallback;   /* the time is in a pair: parse_time_value's forms stay in Python */
    if (level == Py_None && known[T_LEVEL] != NULL) {
        PyObject *found = level_of_value(known[T_LEVEL]);
        if (found == NULL)
            goto done;
        Py_SETREF(level, found);
    }
    result = build(time_us, level, message, known, fields ? fields : Py_None);
    goto done;
fallback:
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(time_us);
    Py_DECREF(level);
    Py_XDECREF(message);
    Py_XDECREF(pairs);
    Py_XDECREF(fields);
    return result;
}

/* The Parsed of the ASCII text s[0:n], or None where Python must decide. */
static PyObject *parse_core(uchar *s, Py_ssize_t n, PyObject *line)
{
    head_scan h;
    scan_head(s, n, &h);
    return parse_scanned(s, n, line, &h);
}

static int ready(void)
{
    if (parsed_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_parse_native.init() was not called");
        return 0;
    }
    return 1;
}

static PyObject *parse_text(PyObject *self, PyObject *line)
{
    (void)self;
    if (!ready())
        return NULL;
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "parse_text expects str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(line))
        Py_RETURN_NONE;
    return parse_core(PyUnicode_1BYTE_DATA(line), PyUnicode_GET_LENGTH(line), line);
}

/* parsed._replace(fields={**(parsed.fields or {}), "invalid_utf8": True}) */
static PyObject *mark_invalid_utf8(PyObject *parsed)
{
    if (!PyTuple_Check(parsed) || PyTuple_GET_SIZE(parsed) != 8) {
        PyErr_SetString(PyExc_TypeError, "the fallback parser must return a Parsed");
        return NULL;
    }
    PyObject *fields = PyDict_New(), *old = PyTuple_GET_ITEM(parsed, 6);
    int truthy = fields ? PyObject_IsTrue(old) : -1;
    if (truthy < 0 || (truthy && PyDict_Update(fields, old) < 0)
        || PyDict_SetItemString(fields, "invalid_utf8", Py_True) < 0) {
        Py_XDECREF(fields);
        return NULL;
    }
    PyTypeObject *type = Py_TYPE(parsed);
    PyObject *marked = type->tp_alloc(type, 8);
    if (marked == NULL) {
        Py_DECREF(fields);
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        PyObject *item = i == 6 ? fields : PyTuple_GET_ITEM(parsed, i);
        if (i != 6)
            Py_INCREF(item);
        PyTuple_SET_ITEM(marked, i, item);
    }
    return marked;
}

/* One line of a block that is not all ASCII, as FileSource._split and _parse take it: decoded
 * (invalid UTF-8 replaced and marked), skipped when blank (Unicode whitespace); NULL with
 * *skip set for a blank line, NULL without it on error. */
static PyObject *parse_raw_line(uchar *s, Py_ssize_t len, PyObject *fallback, int *skip)
{
    *skip = 0;
    int ascii = 1;
    for (Py_ssize_t i = 0; i < len && ascii; i++)
        ascii = s[i] < 0x80;
    if (ascii) {
        Py_ssize_t i = 0;
        while (i < len && is_space(s[i]))
            i++;
        if (i == len) {
            *skip = 1;
            return NULL;
        }
        PyObject *parsed = parse_core(s, len, NULL);
        if (parsed != Py_None)
            return parsed;
        Py_DECREF(parsed);
        PyObject *text = PyUnicode_FromStringAndSize((const char *)s, len);
        parsed = text ? PyObject_CallOneArg(fallback, text) : NULL;
        Py_XDECREF(text);
        return parsed;
    }
    int invalid = 0;
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s, len, NULL);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError))
            return NULL;
        PyErr_Clear();
        text = PyUnicode_DecodeUTF8((const char *)s, len, "replace");
        if (text == NULL)
            return NULL;
        invalid = 1;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    while (i < n && Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i)))
        i++;
    if (i == n) {
        Py_DECREF(text);
        *skip = 1;
        return NULL;
    }
    PyObject *parsed = PyObject_CallOneArg(fallback, text);
    Py_DECREF(text);
    if (parsed != NULL && invalid)
        Py_SETREF(parsed, mark_invalid_utf8(parsed));
    return parsed;
}

#define SCAN_LINES 1024

typedef struct {
    Py_ssize_t first, len;
    int truncated;
    head_scan head;
} line_scan;

/* records.append(Record(position, parsed, app, 0, flags, read_time)); steals `parsed` (NULL: an
 * error already set). */
static int append_record(PyObject *records, PyTypeObject *record_type, Py_ssize_t position_value,
                         PyObject *parsed, PyObject *app, PyObject *zero, PyObject *flags, PyObject *read_time)
{
    PyObject *position = parsed ? PyLong_FromSsize_t(position_value) : NULL;
    PyObject *record = position ? record_type->tp_alloc(record_type, 6) : NULL;
    if (record == NULL) {
        Py_XDECREF(parsed);
        Py_XDECREF(position);
        return -1;
    }
    PyObject *items[6] = {position, parsed, app, zero, flags, read_time};
    for (int k = 0; k < 6; k++) {
        if (k >= 2)
            Py_INCREF(items[k]);
        PyTuple_SET_ITEM(record, k, items[k]);
    }
    untrack_if_atomic(record);
    int failed = PyList_Append(records, record) < 0;
    Py_DECREF(record);
    return failed ? -1 : 0;
}

/* agent/sources/file.py's FileSource._records for parser = "auto": the newline-terminated lines of
 * a block (starting at byte `start` of the file) as Records, cut at `limit` (flag 1, truncated),
 * a trailing CR dropped, blank lines skipped, each parsed here or by `fallback`. An all-ASCII block
 * is taken as the Python hot path takes it (blank test first), its lines scanned with the GIL
 * released; any other block as _split and _parse take it (cut, CR, decode, then the blank test),
 * line by line. */
static PyObject *ascii_records(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer block;
    Py_ssize_t start, limit;
    PyObject *app, *read_time, *fallback;
    PyTypeObject *record_type;
    if (!ready())
        return NULL;
    if (!PyArg_ParseTuple(args, "y*nnOOO!O", &block, &start, &limit, &app, &read_time, &PyType_Type,
                          &record_type, &fallback))
        return NULL;
    PyObject *records = PyList_New(0);
    PyObject *zero = PyLong_FromLong(0), *truncated = PyLong_FromLong(1);
    uchar *s = block.buf;
    Py_ssize_t n = block.len, p = 0;
    int block_ascii = 1;
    line_scan *scans = NULL;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n && block_ascii; i++)
        block_ascii = s[i] < 0x80;
    Py_END_ALLOW_THREADS
    if (records == NULL || zero == NULL || truncated == NULL)
        goto fail;
    if (block_ascii) {
        /* Scan up to SCAN_LINES lines without the GIL (the bytes object cannot change), then
         * make their objects with it: memory stays bounded whatever the block holds. */
        if ((scans = PyMem_Malloc(sizeof(line_scan) * SCAN_LINES)) == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        while (p < n) {
            int count = 0;
            Py_BEGIN_ALLOW_THREADS
            while (p < n && count < SCAN_LINES) {
                uchar *newline = memchr(s + p, '\n', n - p);
                if (newline == NULL) {
                    p = n;   /* no partial last line here: the caller keeps it */
                    break;
                }
                line_scan *l = &scans[count];
                l->first = p;
                l->len = newline - (s + p);
                p += l->len + 1;
                Py_ssize_t i = 0;
                while (i < l->len && is_space(s[l->first + i]))
                    i++;
                if (i == l->len)
                    continue;   /* empty or whitespace only */
                l->truncated = l->len > limit;
                if (l->truncated)
                    l->len = limit;
                if (s[l->first + l->len - 1] == '\r')
                    l->len--;
                scan_head(s + l->first, l->len, &l->head);
                count++;
            }
            Py_END_ALLOW_THREADS
            for (int k = 0; k < count; k++) {
                line_scan *l = &scans[k];
                PyObject *parsed = parse_scanned(s + l->first, l->len, NULL, &l->head);
                if (parsed == Py_None) {
                    Py_DECREF(parsed);
                    PyObject *text = PyUnicode_FromStringAndSize((const char *)s + l->first, l->len);
                    parsed = text ? PyObject_CallOneArg(fallback, text) : NULL;
                    Py_XDECREF(text);
                }
                if (append_record(records, record_type, start + l->first, parsed, app, zero,
                                  l->truncated ? truncated : zero, read_time) < 0)
                    goto fail;
            }
        }
    }
    while (p < n) {   /* a block that is not all ASCII: line by line, with the GIL */
        uchar *newline = memchr(s + p, '\n', n - p);
        if (newline == NULL)
            break;   /* no partial last line here: the caller keeps it */
        Py_ssize_t first = p, len = newline - (s + p);
        p += len + 1;
        PyObject *flags = zero;
        if (len > limit) {
            len = limit;
            flags = truncated;
        }
        if (len > 0 && s[first + len - 1] == '\r')
            len--;
        int skip;
        PyObject *parsed = parse_raw_line(s + first, len, fallback, &skip);
        if (skip)
            continue;
        if (append_record(records, record_type, start + first, parsed, app, zero, flags, read_time) < 0)
            goto fail;
    }
    PyMem_Free(scans);
    Py_DECREF(zero);
    Py_DECREF(truncated);
    PyBuffer_Release(&block);
    return records;
fail:
    PyMem_Free(scans);
    Py_XDECREF(records);
    Py_XDECREF(zero);
    Py_XDECREF(truncated);
    PyBuffer_Release(&block);
    return NULL;
}

/* json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode(fields) for a dict of ASCII
 * str to ASCII str; anything else goes to `fallback` (the Python encoder). */
static PyObject *encode_fields(PyObject *fields, PyObject *fallback)
{
    static const char hex[] = "0123456789abcdef";
    PyObject *key, *value;
    Py_ssize_t pos = 0, size = 2;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key) || !PyUnicode_CheckExact(value)
            || !PyUnicode_IS_ASCII(value))
            return PyObject_CallOneArg(fallback, fields);
        size += 6 * (PyUnicode_GET_LENGTH(key) + PyUnicode_GET_LENGTH(value)) + 6;   /* worst case: \u00XX */
    }
    char *out = PyMem_Malloc(size), *w = out;
    if (out == NULL)
        return PyErr_NoMemory();
    *w++ = '{';
    pos = 0;
    int first = 1;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        if (!first)
            *w++ = ',';
        first = 0;
        for (int part = 0; part < 2; part++) {
            PyObject *text = part ? value : key;
            uchar *t = PyUnicode_1BYTE_DATA(text);
            Py_ssize_t n = PyUnicode_GET_LENGTH(text);
            *w++ = '"';
            for (Py_ssize_t i = 0; i < n; i++) {
                unsigned c = t[i];
                switch (c) {
                case '"': *w++ = '\\'; *w++ = '"'; break;
                case '\\': *w++ = '\\'; *w++ = '\\'; break;
                case '\n': *w++ = '\\'; *w++ = 'n'; break;
                case '\r': *w++ = '\\'; *w++ = 'r'; break;
                case '\t': *w++ = '\\'; *w++ = 't'; break;
                case '\b': *w++ = '\\'; *w++ = 'b'; break;
                case '\f': *w++ = '\\'; *w++ = 'f'; break;
                default:
                    if (c < 0x20) {
                        memcpy(w, "\\u00", 4);
                        w += 4;
                        *w++ = hex[c >> 4];
                        *w++ = hex[c & 15];
                    } else {
                        *w++ = (char)c;
                    }
                }
            }
            *w++ = '"';
            if (!part)
                *w++ = ':';
        }
    }
    *w++ = '}';
    PyObject *encoded = PyUnicode_FromStringAndSize(out, w - out);
    PyMem_Free(out);
    return encoded;
}

/* agent/batcher.py's build_chunk loop without source filters: the Records' columns.
 * columns(records, min_level, default_level, encode) -> (positions, times, levels, messages,
 * request_ids, users, actions, apps, pids, fields_json, flags, claims or None, dropped) */
static PyObject *columns(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *records, *encode;
    long min_level, default_level;
    if (!PyArg_ParseTuple(args, "O!llO", &PyList_Type, &records, &min_level, &default_level, &encode))
        return NULL;
    enum { POS, TIME, MSG, RID, USER, ACTION, APP, PID, FIELDS, CLAIM, NLISTS };
    PyObject *lists[NLISTS] = {NULL};
    Py_ssize_t count = PyList_GET_SIZE(records), kept = 0, dropped = 0;
    int any_claim = 0;
    char *levels = PyMem_Malloc(count + 1), *flags = PyMem_Malloc(count + 1);
    PyObject *result = NULL;
    if (levels == NULL || flags == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0; i < NLISTS; i++)
        if ((lists[i] = PyList_New(0)) == NULL)
            goto done;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *record = PyList_GET_ITEM(records, r);
        if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != 6
            || !PyTuple_Check(PyTuple_GET_ITEM(record, 1)) || PyTuple_GET_SIZE(PyTuple_GET_ITEM(record, 1)) != 8) {
            PyErr_SetString(PyExc_TypeError, "columns expects Records of Parsed");
            goto done;
        }
        PyObject *parsed = PyTuple_GET_ITEM(record, 1);
        PyObject *level_obj = PyTuple_GET_ITEM(parsed, 1);
        long level = default_level;
        if (level_obj != Py_None) {
            level = PyLong_AsLong(level_obj);
            if (level == -1 && PyErr_Occurred())
                goto done;
        }
        if (level > min_level) {
            dropped++;
            continue;
        }
        long flag = PyLong_AsLong(PyTuple_GET_ITEM(record, 4));
        if (flag == -1 && PyErr_Occurred())
            goto done;
        if (level < 0 || level > 255 || flag < 0 || flag > 255) {
            PyErr_SetString(PyExc_ValueError, "byte must be in range(0, 256)");
            goto done;
        }
        PyObject *time_us = PyTuple_GET_ITEM(parsed, 0);
        PyObject *fields = PyTuple_GET_ITEM(parsed, 6);
        PyObject *encoded;
        if (fields != Py_None && PyObject_IsTrue(fields)) {
            encoded = PyDict_CheckExact(fields) ? encode_fields(fields, encode) : PyObject_CallOneArg(encode, fields);
            if (encoded == NULL)
                goto done;
        } else {
            encoded = PyUnicode_FromStringAndSize("", 0);
        }
        PyObject *claim = PyTuple_GET_ITEM(parsed, 7);
        PyObject *values[NLISTS] = {
            PyTuple_GET_ITEM(record, 0), time_us != Py_None ? time_us : PyTuple_GET_ITEM(record, 5),
            PyTuple_GET_ITEM(parsed, 2), PyTuple_GET_ITEM(parsed, 3), PyTuple_GET_ITEM(parsed, 4),
            PyTuple_GET_ITEM(parsed, 5), PyTuple_GET_ITEM(record, 2), PyTuple_GET_ITEM(record, 3), encoded, claim};
        int failed = 0;
        for (int i = 0; i < NLISTS && !failed; i++)
            failed = PyList_Append(lists[i], values[i]) < 0;
        Py_DECREF(encoded);
        if (failed)
            goto done;
        int truthy = PyObject_IsTrue(claim);
        if (truthy < 0)
            goto done;
        any_claim |= truthy;
        levels[kept] = (char)level;
        flags[kept] = (char)flag;
        kept++;
    }
    {
        PyObject *level_bytes = PyBytes_FromStringAndSize(levels, kept);
        PyObject *flag_bytes = PyBytes_FromStringAndSize(flags, kept);
        if (level_bytes && flag_bytes) {
            PyObject *claims = any_claim ? lists[CLAIM] : Py_None;
            result = Py_BuildValue("(OOOOOOOOOOOOn)", lists[POS], lists[TIME], level_bytes, lists[MSG], lists[RID],
                                   lists[USER], lists[ACTION], lists[APP], lists[PID], lists[FIELDS], flag_bytes,
                                   claims, dropped);
        }
        Py_XDECREF(level_bytes);
        Py_XDECREF(flag_bytes);
    }
done:
    for (int i = 0; i < NLISTS; i++)
        Py_XDECREF(lists[i]);
    PyMem_Free(levels);
    PyMem_Free(flags);
    return result;
}

/* -- the serialized Chunk --------------------------------------------------------------------- */

typedef struct {
    unsigned char *data;
    size_t len, room;
} Out;

static int out_reserve(Out *o, size_t extra)
{
    if (o->len + extra <= o->room)
        return 0;
    size_t room = o->room ? o->room : 4096;
    while (room < o->len + extra)
        room *= 2;
    unsigned char *data = PyMem_Realloc(o->data, room);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    o->data = data;
    o->room = room;
    return 0;
}

static void put_varint(Out *o, uint64_t value)   /* room for 10 bytes reserved by the caller */
{
    while (value >= 0x80) {
        o->data[o->len++] = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    o->data[o->len++] = (unsigned char)value;
}

static size_t varint_size(uint64_t value)
{
    size_t size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}

static int put_field(Out *o, unsigned field, const char *data, size_t size)   /* tag, length, bytes */
{
    if (out_reserve(o, 20 + size) < 0)
        return -1;
    put_varint(o, (uint64_t)field << 3 | 2);
    put_varint(o, size);
    memcpy(o->data + o->len, data, size);
    o->len += size;
    return 0;
}

/* A singular string: left out when empty (proto3). */
static int put_text(Out *o, unsigned field, PyObject *text)
{
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL)
        return -1;
    return size ? put_field(o, field, utf8, (size_t)size) : 0;
}

static int put_bytes(Out *o, unsigned field, PyObject *bytes)
{
    if (!PyBytes_Check(bytes)) {
        PyErr_SetString(PyExc_TypeError, "expected bytes");
        return -1;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(bytes);
    return size ? put_field(o, field, PyBytes_AS_STRING(bytes), (size_t)size) : 0;
}

/* Every value of a repeated string field, empty ones too. */
static int put_texts(Out *o, unsigned field, PyObject *texts)
{
    if (!PyList_Check(texts)) {
        PyErr_SetString(PyExc_TypeError, "expected a list of str");
        return -1;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(texts); i++) {
        PyObject *text = PyList_GET_ITEM(texts, i);
        Py_ssize_t size;
        const char *utf8 = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &size) : NULL;
        if (utf8 == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "expected a list of str");
            return -1;
        }
        if (put_field(o, field, utf8, (size_t)size) < 0)
            return -1;
    }
    return 0;
}

enum { AS_UINT64, AS_SINT64, AS_UINT32 };

/* A packed repeated integer field: left out when empty. */
static int put_numbers(Out *o, unsigned field, PyObject *numbers, int kind)
{
    if (!PyList_Check(numbers)) {
        PyErr_SetString(PyExc_TypeError, "expected a list of int");
        return -1;
    }
    Py_ssize_t count = PyList_GET_SIZE(numbers);
    if (count == 0)
        return 0;
    uint64_t *wire = PyMem_Malloc(sizeof(uint64_t) * (size_t)count);
    if (wire == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t size = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *number = PyList_GET_ITEM(numbers, i);
        if (!PyLong_Check(number)) {
            PyErr_SetString(PyExc_TypeError, "expected a list of int");
            goto fail;
        }
        if (kind == AS_SINT64) {
            long long value = PyLong_AsLongLong(number);
            if (value == -1 && PyErr_Occurred())
                goto fail;
            wire[i] = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
        } else {
            unsigned long long value = PyLong_AsUnsignedLongLong(number);
            if (value == (unsigned long long)-1 && PyErr_Occurred())
                goto fail;
            if (kind == AS_UINT32 && value > 0xFFFFFFFFull) {
                PyErr_SetString(PyExc_ValueError, "a uint32 out of range");
                goto fail;
            }
            wire[i] = value;
        }
        size += varint_size(wire[i]);
    }
    if (out_reserve(o, 20 + size) < 0)
        goto fail;
    put_varint(o, (uint64_t)field << 3 | 2);
    put_varint(o, size);
    for (Py_ssize_t i = 0; i < count; i++)
        put_varint(o, wire[i]);
    PyMem_Free(wire);
    return 0;
fail:
    PyMem_Free(wire);
    return -1;
}

/* agent/batcher.py's _chunk(...).SerializeToString() without the message: the fleetlog.v1.Chunk
 * of these columns, its fields in number order as protobuf writes them. */
static PyObject *chunk_bytes(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *source, *source_key, *namespace_, *log_type, *positions, *times, *levels, *messages, *request_ids,
        *users, *actions, *apps, *pids, *fields_json, *flags, *claims, *relayed_host = NULL;
    if (!PyArg_ParseTuple(args, "UUUUOOOOOOOOOOOO|U", &source, &source_key, &namespace_, &log_type, &positions,
                          &times, &levels, &messages, &request_ids, &users, &actions, &apps, &pids, &fields_json,
                          &flags, &claims, &relayed_host))
        return NULL;
    Out o = {NULL, 0, 0};
    if (put_text(&o, 1, source) < 0 || put_text(&o, 2, source_key) < 0 || put_text(&o, 3, namespace_) < 0
        || put_text(&o, 4, log_type) < 0 || put_numbers(&o, 10, positions, AS_UINT64) < 0
        || put_numbers(&o, 11, times, AS_SINT64) < 0 || put_bytes(&o, 12, levels) < 0
        || put_texts(&o, 13, messages) < 0 || put_texts(&o, 14, request_ids) < 0 || put_texts(&o, 15, users) < 0
        || put_texts(&o, 16, actions) < 0 || put_texts(&o, 17, apps) < 0 || put_numbers(&o, 18, pids, AS_UINT32) < 0
        || put_texts(&o, 19, fields_json) < 0 || put_bytes(&o, 20, flags) < 0
        || (claims != Py_None && put_texts(&o, 21, claims) < 0)
        || (relayed_host != NULL && put_text(&o, 22, relayed_host) < 0)) {
        PyMem_Free(o.data);
        return NULL;
    }
    PyObject *result = PyBytes_FromStringAndSize((const char *)o.data, (Py_ssize_t)o.len);
    PyMem_Free(o.data);
    return result;
}

static PyObject *init(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *type, *level_map, *target_map;
    if (!PyArg_ParseTuple(args, "O!O!O!", &PyType_Type, &type, &PyDict_Type, &level_map, &PyDict_Type,
                          &target_map))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "Parsed must be a tuple type");
        return NULL;
    }
    Py_INCREF(type);
    Py_INCREF(level_map);
    Py_INCREF(target_map);
    Py_XSETREF(parsed_type, (PyTypeObject *)type);
    Py_XSETREF(levels, level_map);
    Py_XSETREF(targets, target_map);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"init", init, METH_VARARGS,
     "init(Parsed, levels, targets): the Parsed type, {lower-case level name: int}, {key: target index}."},
    {"parse_text", parse_text, METH_O,
     "parse_text(line) -> Parsed, or None where agent.parse's Python code must decide."},
    {"columns", columns, METH_VARARGS,
     "columns(records, min_level, default_level, encode) -> the columns of a Chunk and the count dropped"},
    {"chunk_bytes", chunk_bytes, METH_VARARGS,
     "chunk_bytes(source, source_key, namespace, log_type, *the columns of a Chunk, claims or None) -> bytes"},
    {"ascii_records", ascii_records, METH_VARARGS,
     "ascii_records(block, start, limit, app, read_time_us, Record, fallback) -> [Record]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_parse_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__parse_native(void) { return PyModule_Create(&module); }
