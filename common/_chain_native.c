/* The writer's hash-chain step in C: canonical JSON + SHA-256 + link for a whole batch in one call.
 *
 * The canonical form and the chain are defined in common/chain.py (and docs/tamper-evidence.md);
 * this produces the same bytes as its reference (json.dumps with sort_keys, compact separators,
 * ensure_ascii=False, UTF-8) for the value types the store keeps: None, int, bool and str.
 * tests/unit/test_chain_native.py compares the two.
 *
 *   link_rows(head: bytes, rows: list[list], keys: tuple[str], columns: tuple[int], link_column: int) -> bytes
 *   link_columns(head: bytes, table: list[list], keys: tuple[str], columns: tuple[int], link_column: int) -> bytes
 *
 * For each row, the canonical object is {keys[k]: row[columns[k]]} in the given key order (the
 * caller passes the keys sorted); its link is stored in row[link_column] and the last link is
 * returned. Nothing is changed if any row fails (TypeError, UnicodeEncodeError). Rows are lists
 * so the link goes into the row the writer built, without a second copy of it. link_columns is
 * the same over a table kept by column (table[c][i] is row i's value of column c, every column
 * as long): the links go into table[link_column].
 *
 * Three passes, so that the costly part holds no GIL: (1) with the GIL, each value is looked at
 * once and noted as a piece (a str's UTF-8, an int's digits, or "as the row before"); (2) without
 * it, the canonical bytes are made from the pieces and hashed, a helper thread hashing one step
 * while the next is made; (3) with it again, the links go into the rows. The collector's
 * receiving thread prepares batches during (2), which was three quarters of the call. The caller
 * must not change the rows (or the table) from another thread during the call: the pieces point
 * into the strs they hold.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* Rows a step of pass (2): one step's canonical bytes are made while the helper thread hashes the
 * step before. 2048 rows of about 600 bytes keep each of the two buffers near 1.2 MB. */
#define BLOCK_ROWS 2048

/* A growable byte buffer on the raw allocator, which pass (2) may call without the GIL. Failing
 * to grow is -1 and nothing else: a caller that holds the GIL raises MemoryError. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
} Buffer;

static int buffer_grow(Buffer *buf, size_t extra) {
    size_t cap = buf->cap ? buf->cap : 4096;
    while (cap < buf->len + extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *data = PyMem_RawRealloc(buf->data, cap);
    if (data == NULL)
        return -1;
    buf->data = data;
    buf->cap = cap;
    return 0;
}

static inline int buffer_reserve(Buffer *buf, size_t extra) {
    return buf->len + extra <= buf->cap ? 0 : buffer_grow(buf, extra);
}

static inline int buffer_add(Buffer *buf, const char *bytes, size_t n) {
    if (buffer_reserve(buf, n) < 0)
        return -1;
    memcpy(buf->data + buf->len, bytes, n);
    buf->len += n;
    return 0;
}

/* Which bytes a JSON string must escape: control characters, '"' and '\\'. */
static unsigned char needs_escape[256];

static void init_escape_table(void) {
    for (int c = 0; c < 0x20; c++)
        needs_escape[c] = 1;
    needs_escape['"'] = needs_escape['\\'] = 1;
}

/* The UTF-8 `s` (`n` bytes) as a JSON string, as json.encoder.encode_basestring writes it: '"'
 * and '\\' escaped, \b \f \n \r \t in short form, other control characters as \u00xx (lowercase
 * hex), everything else as is. Working on UTF-8 bytes is safe: bytes of multi-byte sequences are
 * all >= 0x80. Runs that need no escaping (nearly all text) are copied whole. No GIL needed. */
static int add_json_string(Buffer *buf, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    if (n > (SIZE_MAX - 2) / 6 || buffer_reserve(buf, n * 6 + 2) < 0)
        return -1;
    char *out = buf->data + buf->len;
    *out++ = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!needs_escape[c])
            continue;
        memcpy(out, s + run, i - run);
        out += i - run;
        run = i + 1;
        *out++ = '\\';
        switch (c) {
        case '"': *out++ = '"'; break;
        case '\\': *out++ = '\\'; break;
        case '\b': *out++ = 'b'; break;
        case '\f': *out++ = 'f'; break;
        case '\n': *out++ = 'n'; break;
        case '\r': *out++ = 'r'; break;
        case '\t': *out++ = 't'; break;
        default:
            *out++ = 'u'; *out++ = '0'; *out++ = '0';
            *out++ = hex[c >> 4]; *out++ = hex[c & 0xf];
        }
    }
    memcpy(out, s + run, n - run);
    out += n - run;
    *out++ = '"';
    buf->len = (size_t)(out - buf->data);
    return 0;
}

/* A str's UTF-8: its own bytes when it is ASCII, else the form PyUnicode_AsUTF8AndSize keeps in
 * the str (UnicodeEncodeError for a lone surrogate). Both live as long as the str. GIL held. */
static const char *utf8_of(PyObject *text, Py_ssize_t *n) {
    if (PyUnicode_IS_COMPACT_ASCII(text)) {
        *n = PyUnicode_GET_LENGTH(text);
        return (const char *)PyUnicode_DATA(text);
    }
    return PyUnicode_AsUTF8AndSize(text, n);
}

/* Decimal digits of a 64-bit integer (snprintf was a fifth of the whole call). */
static int add_integer(Buffer *buf, long long number) {
    char digits[24], *end = digits + sizeof digits, *p = end;
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number : (unsigned long long)number;
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (number < 0)
        *--p = '-';
    return buffer_add(buf, p, (size_t)(end - p));
}

/* The JSON of a value that is not a str (null, true, false, an integer) appended to `buf`, or an
 * exception: TypeError for a type the canonical form has no encoding for. GIL held. */
static int add_literal(Buffer *buf, PyObject *value) {
    int rc;
    if (value == Py_None) {
        rc = buffer_add(buf, "null", 4);
    } else if (PyBool_Check(value)) {
        rc = value == Py_True ? buffer_add(buf, "true", 4) : buffer_add(buf, "false", 5);
    } else if (PyLong_Check(value)) {
        int overflow = 0;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred())
            return -1;
        if (!overflow) {
            rc = add_integer(buf, number);
        } else {    /* beyond 64 bits: Python's own decimal form, as json writes it */
            PyObject *digits = PyObject_Str(value);
            Py_ssize_t n;
            const char *s = digits == NULL ? NULL : PyUnicode_AsUTF8AndSize(digits, &n);
            if (s == NULL) {
                Py_XDECREF(digits);
                return -1;
            }
            rc = buffer_add(buf, s, (size_t)n);
            Py_DECREF(digits);
        }
    } else {
        PyErr_Format(PyExc_TypeError, "the canonical form has no encoding for %.100s values",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    if (rc < 0)
        PyErr_NoMemory();
    return rc;
}

/* One value of one row that is not the row before's (that one is a bit of the row's repeat
 * mask), noted in pass (1) and written in pass (2) after its key. Most of a row's values repeat
 * (host, source, tier...): a piece only for the others keeps a 50,000-event call's notes near
 * 4 MB instead of 16. */
enum { PIECE_STR, PIECE_LITERAL };

typedef struct {
    union {
        const char *text;   /* PIECE_STR: the str's UTF-8, escaped when written */
        size_t offset;      /* PIECE_LITERAL: where its JSON is in the call's literals */
    } at;
    uint32_t size;
    uint32_t kind;
} Piece;

#define MAX_KEYS 64         /* a row's repeat mask is a uint64_t */

/* The pieces of a call, in row order; grown as pass (1) goes. */
typedef struct {
    Piece *items;
    size_t count, room;
} Pieces;

static Piece *pieces_next(Pieces *p) {
    if (p->count == p->room) {
        size_t room = p->room ? p->room * 2 : 4096;
        Piece *items = room <= SIZE_MAX / sizeof(Piece) ? PyMem_RawRealloc(p->items, room * sizeof(Piece)) : NULL;
        if (items == NULL)
            return NULL;
        p->items = items;
        p->room = room;
    }
    return &p->items[p->count++];
}

/* One canonical key: its prefix (`{"key":` for the first, `,"key":` for the rest) and where its
 * values are. Values that repeat from row to row (host, source, tier, the receive time, small
 * ints: the same object) are encoded once: `last` keeps the JSON written for the next row. */
typedef struct {
    Py_ssize_t index;    /* the row column holding this key's value */
    Buffer prefix;
    PyObject *seen;      /* pass (1): the value of the row before (borrowed: the rows hold it) */
    Buffer last;         /* pass (2): the JSON of the value of the row before, when repeated */
} Column;

static int columns_init(Column *cols, PyObject *keys, PyObject *indexes, Py_ssize_t count) {
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *key = PyTuple_GET_ITEM(keys, k);
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be str");
            return -1;
        }
        cols[k].index = PyLong_AsSsize_t(PyTuple_GET_ITEM(indexes, k));
        if (cols[k].index < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "columns must be non-negative");
            return -1;
        }
        Py_ssize_t n;
        const char *name = utf8_of(key, &n);
        if (name == NULL)
            return -1;
        if (buffer_add(&cols[k].prefix, k == 0 ? "{" : ",", 1) < 0 || add_json_string(&cols[k].prefix, name, (size_t)n) < 0 ||
            buffer_add(&cols[k].prefix, ":", 1) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static void columns_free(Column *cols, Py_ssize_t count) {
    for (Py_ssize_t k = 0; cols != NULL && k < count; k++) {
        PyMem_RawFree(cols[k].prefix.data);
        PyMem_RawFree(cols[k].last.data);
    }
    PyMem_Free(cols);
}

/* Pass (1), GIL held: row `i`, table[i][c] (by_column 0, a list of rows) or table[c][i]
 * (by_column 1, a list of columns, checked to be long enough before): in `*repeats` a bit a key
 * whose value is the row before's object, a piece for each other value. Ints become their
 * digits in `literals`; a str is only pointed at. */
static int note_row(uint64_t *repeats, Pieces *pieces, Buffer *literals, PyObject *table, Py_ssize_t i,
                    int by_column, Column *cols, Py_ssize_t count) {
    PyObject *row = by_column ? NULL : PyList_GET_ITEM(table, i);
    Py_ssize_t width = by_column ? PyList_GET_SIZE(table) : PyList_GET_SIZE(row);
    for (Py_ssize_t k = 0; k < count; k++) {
        Column *col = &cols[k];
        if (col->index >= width) {
            PyErr_SetString(PyExc_IndexError, "a column index is past the end of a row");
            return -1;
        }
        PyObject *value = by_column ? PyList_GET_ITEM(PyList_GET_ITEM(table, col->index), i)
                                    : PyList_GET_ITEM(row, col->index);
        if (value == col->seen) {
            *repeats |= (uint64_t)1 << k;
            continue;
        }
        col->seen = value;
        Piece *piece = pieces_next(pieces);
        if (piece == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (PyUnicode_Check(value)) {
            Py_ssize_t n;
            const char *s = utf8_of(value, &n);
            if (s == NULL)
                return -1;
            if ((size_t)n > UINT32_MAX) {
                PyErr_SetString(PyExc_ValueError, "a value of 4 GiB or more has no place in the chain");
                return -1;
            }
            piece->at.text = s;
            piece->size = (uint32_t)n;
            piece->kind = PIECE_STR;
        } else {
            size_t before = literals->len;
            if (add_literal(literals, value) < 0)
                return -1;
            piece->at.offset = before;
            piece->size = (uint32_t)(literals->len - before);
            piece->kind = PIECE_LITERAL;
        }
    }
    return 0;
}

/* Pass (2), no GIL: a row's canonical object appended to `out`, from its repeat mask and its
 * pieces, taken from `*cursor` on. `next`: the repeat mask of the row after (0 for the last),
 * to know which values to keep for it. -1: out of memory. */
static int write_row(Buffer *out, uint64_t repeats, uint64_t next, const Piece **cursor, const char *literals,
                     Column *cols, Py_ssize_t count) {
    for (Py_ssize_t k = 0; k < count; k++) {
        Column *col = &cols[k];
        if (buffer_add(out, col->prefix.data, col->prefix.len) < 0)
            return -1;
        if (repeats >> k & 1) {
            if (buffer_add(out, col->last.data, col->last.len) < 0)
                return -1;
            continue;
        }
        const Piece *piece = (*cursor)++;
        size_t from = out->len;
        int rc = piece->kind == PIECE_STR ? add_json_string(out, piece->at.text, piece->size)
                                          : buffer_add(out, literals + piece->at.offset, piece->size);
        if (rc < 0)
            return -1;
        if (next >> k & 1) {
            col->last.len = 0;
            if (buffer_add(&col->last, out->data + from, out->len - from) < 0)
                return -1;
        }
    }
    return buffer_add(out, "}", 1);
}

/* A table by column: every column a list of `rows` values (the ones the keys name and the link
 * column), so note_row and the links' store need no check an item. */
static int check_table(PyObject *table, Column *cols, Py_ssize_t key_count, Py_ssize_t link_column,
                       Py_ssize_t *rows) {
    Py_ssize_t width = PyList_GET_SIZE(table);
    if (width == 0 || link_column >= width || !PyList_Check(PyList_GET_ITEM(table, link_column))) {
        PyErr_SetString(PyExc_TypeError, "the table must be a list of column lists that has the link column");
        return -1;
    }
    *rows = PyList_GET_SIZE(PyList_GET_ITEM(table, link_column));
    for (Py_ssize_t k = 0; k < key_count; k++) {
        PyObject *column = cols[k].index < width ? PyList_GET_ITEM(table, cols[k].index) : NULL;
        if (column == NULL || !PyList_Check(column) || PyList_GET_SIZE(column) != *rows) {
            PyErr_SetString(PyExc_TypeError, "every column of the table must be a list as long as the link column");
            return -1;
        }
    }
    return 0;
}

/* One step's canonical bytes and where each row's ends; hashed into links[first + 1 ..]. */
typedef struct {
    Buffer canonical;
    size_t *event_ends;         /* BLOCK_ROWS + 1: event_ends[0] = 0 */
    Py_ssize_t first, count;    /* the step's rows */
    unsigned char *links;       /* the call's: links[32 * i] is the link before row i */
    EVP_MD *sha256;
    EVP_MD_CTX *ctx;            /* the call's one context: one step is hashed at a time */
    int failed;
} HashStep;

static void hash_step(HashStep *step) {
    for (Py_ssize_t j = 0; j < step->count && !step->failed; j++) {
        unsigned char pair[64];
        unsigned int size;
        Py_ssize_t i = step->first + j;
        size_t from = step->event_ends[j], to = step->event_ends[j + 1];
        memcpy(pair, step->links + 32 * i, 32);
        step->failed = !EVP_DigestInit_ex(step->ctx, step->sha256, NULL) ||
                       !EVP_DigestUpdate(step->ctx, step->canonical.data + from, to - from) ||
                       !EVP_DigestFinal_ex(step->ctx, pair + 32, &size) ||
                       !EVP_DigestInit_ex(step->ctx, step->sha256, NULL) || !EVP_DigestUpdate(step->ctx, pair, 64) ||
                       !EVP_DigestFinal_ex(step->ctx, step->links + 32 * (i + 1), &size);
    }
}

static void *hash_step_thread(void *arg) {
    hash_step(arg);
    return NULL;
}

/* Hashing of the step before, if one runs: waited for before its buffer or the next link is used. */
typedef struct {
    pthread_t thread;
    HashStep *step;             /* NULL when none runs */
} Hashing;

static int hashing_wait(Hashing *h) {
    if (h->step == NULL)
        return 0;
    pthread_join(h->thread, NULL);
    int failed = h->step->failed;
    h->step = NULL;
    return failed;
}

/* Hash `step` beside the caller; inline when no thread can be made (the same bytes, later). */
static void hashing_start(Hashing *h, HashStep *step) {
    if (pthread_create(&h->thread, NULL, hash_step_thread, step) == 0)
        h->step = step;
    else
        hash_step(step);
}

/* Pass (2), no GIL: every row's canonical bytes made and hashed, steps of BLOCK_ROWS, each hashed
 * beside the making of the next. 0, or -1 out of memory, or 1 when OpenSSL failed. */
static int make_links(const uint64_t *repeats, const Piece *pieces, Py_ssize_t row_count, Py_ssize_t key_count,
                      const char *literals, Column *cols, HashStep steps[2], unsigned char *links, EVP_MD *sha256,
                      EVP_MD_CTX *ctx) {
    Hashing hashing = {0};
    const Piece *cursor = pieces;
    int failed = 0;
    for (Py_ssize_t block = 0, turn = 0; block < row_count && !failed; block += BLOCK_ROWS, turn ^= 1) {
        Py_ssize_t block_end = block + BLOCK_ROWS < row_count ? block + BLOCK_ROWS : row_count;
        HashStep *step = &steps[turn];
        /* The buffer of the step before the last one: its hashing ended before that one's began. */
        step->canonical.len = 0;
        for (Py_ssize_t i = block; i < block_end; i++) {
            uint64_t next = i + 1 < row_count ? repeats[i + 1] : 0;
            if (write_row(&step->canonical, repeats[i], next, &cursor, literals, cols, key_count) < 0) {
                hashing_wait(&hashing);
                return -1;
            }
            step->event_ends[i - block + 1] = step->canonical.len;
        }
        /* Its links need the last link of the step before: wait for that one, then hash this one
         * beside the making of the next. */
        failed = hashing_wait(&hashing);
        if (!failed) {
            step->first = block;
            step->count = block_end - block;
            step->links = links;
            step->sha256 = sha256;
            step->ctx = ctx;
            step->failed = 0;
            hashing_start(&hashing, step);
        }
    }
    return hashing_wait(&hashing) || failed ? 1 : 0;
}

static PyObject *link_table(PyObject *args, int by_column) {
    Py_buffer head;
    PyObject *rows, *keys, *columns;
    Py_ssize_t link_column;
    if (!PyArg_ParseTuple(args, by_column ? "y*O!O!O!n:link_columns" : "y*O!O!O!n:link_rows", &head, &PyList_Type,
                          &rows, &PyTuple_Type, &keys, &PyTuple_Type, &columns, &link_column))
        return NULL;

    PyObject *result = NULL;
    HashStep steps[2] = {{{0}}};   /* filled in turn: one is hashed while the other is made */
    Column *cols = NULL;
    uint64_t *repeats = NULL;
    Pieces pieces = {0};
    Buffer literals = {0};
    unsigned char *links = NULL;
    EVP_MD *sha256 = NULL;
    EVP_MD_CTX *ctx = NULL;
    Py_ssize_t key_count = PyTuple_GET_SIZE(keys), row_count = PyList_GET_SIZE(rows);

    if (head.len != 32 || key_count != PyTuple_GET_SIZE(columns) || key_count == 0 || key_count > MAX_KEYS ||
        link_column < 0) {
        PyErr_SetString(PyExc_ValueError, "head must be 32 bytes, keys/columns non-empty (at most 64) and equal in "
                        "length, link_column >= 0");
        goto done;
    }
    cols = PyMem_Calloc((size_t)key_count, sizeof *cols);
    steps[0].event_ends = PyMem_Calloc(BLOCK_ROWS + 1, sizeof(size_t));
    steps[1].event_ends = PyMem_Calloc(BLOCK_ROWS + 1, sizeof(size_t));
    if (!cols || !steps[0].event_ends || !steps[1].event_ends) {
        PyErr_NoMemory();
        goto done;
    }
    if (columns_init(cols, keys, columns, key_count) < 0)
        goto done;
    /* By column, `rows` is the table: the row count is its columns' length. */
    if (by_column && check_table(rows, cols, key_count, link_column, &row_count) < 0)
        goto done;
    if ((size_t)row_count + 1 > SIZE_MAX / 32 || (links = PyMem_Malloc(32 * ((size_t)row_count + 1))) == NULL ||
        (repeats = PyMem_RawCalloc((size_t)row_count + 1, sizeof *repeats)) == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* 1. Every value looked at once, with the GIL. */
    for (Py_ssize_t i = 0; i < row_count; i++) {
        if (!by_column) {
            PyObject *row = PyList_GET_ITEM(rows, i);
            if (!PyList_Check(row) || link_column >= PyList_GET_SIZE(row)) {
                PyErr_SetString(PyExc_TypeError, "rows must be lists that have the link column");
                goto done;
            }
        }
        if (note_row(&repeats[i], &pieces, &literals, rows, i, by_column, cols, key_count) < 0)
            goto done;
    }

    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    ctx = EVP_MD_CTX_new();
    if (sha256 == NULL || ctx == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL has no SHA-256");
        goto done;
    }
    memcpy(links, head.buf, 32);

    /* 2. The canonical bytes and their links, without it. */
    int made;
    Py_BEGIN_ALLOW_THREADS
    made = make_links(repeats, pieces.items, row_count, key_count, literals.data, cols, steps, links, sha256, ctx);
    Py_END_ALLOW_THREADS
    if (made != 0) {
        if (made < 0)
            PyErr_NoMemory();
        else
            PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        goto done;
    }

    /* 3. Only now change the rows (or the link column): every row or none. */
    PyObject **link_objects = PyMem_Calloc((size_t)row_count + 1, sizeof *link_objects);
    if (link_objects == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < row_count; i++) {
        link_objects[i] = PyBytes_FromStringAndSize((const char *)links + 32 * (i + 1), 32);
        if (link_objects[i] == NULL) {
            for (Py_ssize_t j = 0; j < i; j++)
                Py_DECREF(link_objects[j]);
            PyMem_Free(link_objects);
            goto done;
        }
    }
    PyObject *link_list = by_column ? PyList_GET_ITEM(rows, link_column) : NULL;
    for (Py_ssize_t i = 0; i < row_count; i++) {   /* PyList_SetItem steals link_objects[i] */
        if (by_column)
            PyList_SetItem(link_list, i, link_objects[i]);
        else
            PyList_SetItem(PyList_GET_ITEM(rows, i), link_column, link_objects[i]);
    }
    PyMem_Free(link_objects);
    result = PyBytes_FromStringAndSize((const char *)links + 32 * row_count, 32);

done:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(sha256);
    columns_free(cols, key_count);
    for (int t = 0; t < 2; t++) {
        PyMem_RawFree(steps[t].canonical.data);
        PyMem_Free(steps[t].event_ends);
    }
    PyMem_RawFree(repeats);
    PyMem_RawFree(pieces.items);
    PyMem_RawFree(literals.data);
    PyMem_Free(links);
    PyBuffer_Release(&head);
    return result;
}

static PyObject *link_rows(PyObject *Py_UNUSED(self), PyObject *args) {
    return link_table(args, 0);
}

static PyObject *link_columns(PyObject *Py_UNUSED(self), PyObject *args) {
    return link_table(args, 1);
}

static PyMethodDef methods[] = {
    {"link_rows", link_rows, METH_VARARGS,
     "link_rows(head, rows, keys, columns, link_column) -> head: store each row's chain link in it."},
    {"link_columns", link_columns, METH_VARARGS,
     "link_columns(head, table, keys, columns, link_column) -> head: the same over a table of columns; "
     "the links go into table[link_column]."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_chain_native", "The hash chain's per-batch step in C (see common/chain.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__chain_native(void) {
    init_escape_table();
    return PyModule_Create(&module);
}
