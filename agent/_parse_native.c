/* The agent's text-line parse in C: agent/parse.py's parse_text for ASCII lines.
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

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
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
        PyObject *key = PyUnicode_FromStringAndSize((const char *)s + p, k - p);
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
    return parsed;
}

static PyObject *parse_text(PyObject *self, PyObject *line)
{
    (void)self;
    if (parsed_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_parse_native.init() was not called");
        return NULL;
    }
    if (!PyUnicode_Check(line)) {
        PyErr_SetString(PyExc_TypeError, "parse_text expects str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(line))
        Py_RETURN_NONE;
    uchar *s = PyUnicode_1BYTE_DATA(line);
    Py_ssize_t n = PyUnicode_GET_LENGTH(line);
    if (n > 0 && s[0] == '{')
        Py_RETURN_NONE;   /* maybe JSON: parse_auto's business */

    int has_time = 0;
    int64_t us = 0;
    Py_ssize_t rest = 0;
    iso_match m;
    Py_ssize_t e = match_iso(s, 0, n, &m);
    if (e >= 0) {
        if (iso_to_us(s, &m, &us) == 0) {
            has_time = 1;
            rest = lstrip(s, e, n);
        }
    } else if (n > 0 && s[0] == '[') {
        e = match_iso(s, 1, n, &m);
        if (e >= 0 && e < n && s[e] == ']' && iso_to_us(s, &m, &us) == 0) {
            has_time = 1;
            rest = lstrip(s, e + 1, n);
        }
    } else if (n > 0 && is_digit(s[0])) {
        e = match_epoch(s, n, &us);
        if (e >= 0) {
            has_time = 1;
            rest = lstrip(s, e, n);
        }
    } else if (looks_syslog(s, n)) {
        Py_RETURN_NONE;   /* the year comes from today's date: parse.py decides */
    }

    PyObject *level = Py_None;
    Py_INCREF(level);
    Py_ssize_t ws, we;
    e = match_level(s, rest, n, &ws, &we);
    if (e >= 0) {
        PyObject *found = level_of(s, ws, we);
        if (found == NULL) {
            Py_DECREF(level);
            return NULL;
        }
        if (found != Py_None) {
            Py_SETREF(level, found);
            rest = e;
        } else {
            Py_DECREF(found);
        }
    }

    PyObject *time_us = has_time ? PyLong_FromLongLong(us) : (Py_INCREF(Py_None), Py_None);
    PyObject *message = time_us ? PyUnicode_Substring(line, rest, n) : NULL;
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
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_parse_native", NULL, -1, methods};

PyMODINIT_FUNC PyInit__parse_native(void) { return PyModule_Create(&module); }
