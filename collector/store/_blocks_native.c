/* The hot loops of collector/store/blocks.py in C: the block's bloom filter, the decoded rows,
 * and the derived event ids. blocks.py keeps a Python form of each that gives the same result
 * (tests/unit/test_blocks.py holds both to it); it uses these when the extension is built.
 *
 *   bloom(messages, request_ids, users, tokens, bits_per_item, hashes, min_bits=64) -> bytes
 *       The filter of a block's items: the words of every message (runs of ASCII letters and
 *       digits, lowercased; the pieces of messages with non-ASCII text, joined by newlines, go
 *       through `tokens(text)`, Python's folding), "\x01r" + each request id and "\x01u" + each user
 *       (None and "" left out). Each distinct item's UTF-8 (surrogatepass) gives
 *       z = mix64(crc32(item)) and sets `hashes` bits (h1 + i * h2) % bits, h1 = z's low 32 bits,
 *       h2 = its high 32 bits | 1; bits = max(min_bits, distinct items * bits_per_item) rounded up to a
 *       multiple of 8. The word scan and the bits run with the GIL let go.
 *   str_column(values) -> (data: bytes, has_none: bool, has_empty: bool) | None
 *       The UTF-8 (surrogatepass) of str values joined by NUL, None standing as "" (a str column's
 *       section); None when a value holds a NUL. TypeError for a value neither str nor None.
 *   link_prefixes(links, size) -> bytes
 *       The first `size` bytes of each link (bytes), one after another.
 *   origin_spans(origins, positions) -> dict[origin, (min pos, max pos)]
 *   split(data, size) -> list[bytes]
 *       `data` cut into pieces of `size` bytes (its length a multiple of it).
 *   rows(columns, count) -> list[list]
 *       The rows of equally long columns (lists or tuples of `count` values). A row of str, int,
 *       bytes, float and None only is untracked by the cycle collector (no cycle can pass
 *       through it): the collections a block's thousands of lists would cause cost 0.3-0.7 µs
 *       an event (bench/block_codec.py).
 *   fill_ids(rows, id_col, origin_col, pos_col, source_keys) -> None
 *       row[id_col] = event_id(host, source_key, row[pos_col]) (common/ids.py: 32 hex digits of
 *       BLAKE2b-128 of "host NUL source_key NUL pos") where it is None, (host, source_key) =
 *       source_keys[row[origin_col]].
 *   bloom_holds_any(bloom, pairs, hashes) -> bool
 *       Whether the filter (as bloom() makes it, `hashes` bits an item) may hold one of the
 *       items whose (h1, h2) are `pairs`.
 *   pick_strs(data, indexes) -> list[str]; pick_ints(data, delta, indexes) -> list[int]
 *       Values `indexes` (ascending) of a string or integer column's section, without
 *       decoding the rest of it.
 *
 *   columns(rows, width) -> list[list]
 *       The columns of rows (lists or tuples of `width` values each): rows(columns, count) undone,
 *       what encoding a block starts from, without zip's iterator a row.
 *   uncertain_objects(values) -> list[int]
 *       The indexes of the values that are not "" and not certainly a JSON object (json.loads
 *       would give a dict): a strict subset of the grammar is checked (ASCII outside strings, no
 *       NaN or Infinity, at most 64 levels deep), so json.loads must decide for these.
 *
 * The caller must not change the rows while a call runs (the block's rows are its own).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* -- crc32 (zlib's) and the 64-bit mix ------------------------------------------------------ */

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[n] = c;
    }
}

static uint32_t crc32_of(const unsigned char *data, size_t size) {
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < size; i++)
        c = crc_table[(c ^ data[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* splitmix64's finaliser: crc32 is linear, so similar words would set related bits. */
static uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* -- a set of byte strings ------------------------------------------------------------------ */

typedef struct {
    uint64_t probe;             /* the set's own hash; the bloom's (crc32, mixed) is taken later */
    size_t offset, size;
} Item;

typedef struct {
    unsigned char *arena;       /* the items' bytes, one after another */
    size_t used, room;
    Item *items;
    size_t count, items_room;
    size_t *slots;              /* open addressing: item index + 1, 0 for an empty slot */
    size_t mask;
} ItemSet;

static void set_free(ItemSet *s) {
    PyMem_RawFree(s->arena);
    PyMem_RawFree(s->items);
    PyMem_RawFree(s->slots);
}

static int set_init(ItemSet *s) {
    memset(s, 0, sizeof(*s));
    s->room = 4096;
    s->items_room = 256;
    s->mask = 511;
    s->arena = PyMem_RawMalloc(s->room);
    s->items = PyMem_RawMalloc(s->items_room * sizeof(Item));
    s->slots = PyMem_RawCalloc(s->mask + 1, sizeof(size_t));
    return s->arena && s->items && s->slots ? 0 : -1;
}

/* Room for `size` more bytes at the arena's end, where the next candidate item is written. */
static unsigned char *set_reserve(ItemSet *s, size_t size) {
    if (s->room - s->used < size) {
        size_t room = s->room;
        while (room - s->used < size) {
            if (room > SIZE_MAX / 2)
                return NULL;
            room *= 2;
        }
        unsigned char *arena = PyMem_RawRealloc(s->arena, room);
        if (arena == NULL)
            return NULL;
        s->arena = arena;
        s->room = room;
    }
    return s->arena + s->used;
}

static int set_grow(ItemSet *s) {
    size_t mask = s->mask * 2 + 1;
    size_t *slots = PyMem_RawCalloc(mask + 1, sizeof(size_t));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < s->count; i++) {
        size_t j = (size_t)s->items[i].probe & mask;
        while (slots[j])
            j = (j + 1) & mask;
        slots[j] = i + 1;
    }
    PyMem_RawFree(s->slots);
    s->slots = slots;
    s->mask = mask;
    return 0;
}

/* Adds the `size` bytes written at the arena's end (set_reserve) unless the set holds them:
 * 1 when added, 0 when held, -1 when out of memory. */
/* A word at a time: most items are a few bytes, seen many times; crc32 is for the new ones. */
static uint64_t probe_hash(const unsigned char *data, size_t size) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ size;
    for (; size >= 8; data += 8, size -= 8) {
        uint64_t word;
        memcpy(&word, data, 8);
        h = (h ^ word) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 29;
    }
    uint64_t tail = 0;
    memcpy(&tail, data, size);
    h = (h ^ tail) * 0x94D049BB133111EBull;
    return h ^ (h >> 32);
}

static int set_add(ItemSet *s, size_t size) {
    const unsigned char *data = s->arena + s->used;
    uint64_t probe = probe_hash(data, size);
    size_t j = (size_t)probe & s->mask;
    for (size_t slot; (slot = s->slots[j]) != 0; j = (j + 1) & s->mask) {
        Item *item = &s->items[slot - 1];
        if (item->probe == probe && item->size == size && memcmp(s->arena + item->offset, data, size) == 0)
            return 0;
    }
    if (s->count == s->items_room) {
        Item *items = PyMem_RawRealloc(s->items, 2 * s->items_room * sizeof(Item));
        if (items == NULL)
            return -1;
        s->items = items;
        s->items_room *= 2;
    }
    s->items[s->count] = (Item){probe, s->used, size};
    s->slots[j] = ++s->count;
    s->used += size;
    if (s->count * 2 > s->mask && set_grow(s) < 0)
        return -1;
    return 1;
}

static int set_add_bytes(ItemSet *s, const char *prefix, size_t prefix_size, const char *data, size_t size) {
    if (size > SIZE_MAX - prefix_size)
        return -1;
    unsigned char *out = set_reserve(s, prefix_size + size);
    if (out == NULL)
        return -1;
    memcpy(out, prefix, prefix_size);
    memcpy(out + prefix_size, data, size);
    return set_add(s, prefix_size + size);
}

static int is_word[256];
static unsigned char lower[256];

static void words_init(void) {
    for (int c = 0; c < 256; c++) {
        is_word[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        lower[c] = (unsigned char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
    }
}

static int add_ascii_words(ItemSet *s, const unsigned char *text, size_t n) {
    size_t i = 0;
    while (i < n) {
        while (i < n && !is_word[text[i]])
            i++;
        size_t start = i;
        while (i < n && is_word[text[i]])
            i++;
        if (i == start)
            break;
        unsigned char *out = set_reserve(s, i - start);
        if (out == NULL)
            return -1;
        for (size_t j = start; j < i; j++)
            *out++ = lower[text[j]];
        if (set_add(s, i - start) < 0)
            return -1;
    }
    return 0;
}

/* A str's UTF-8 with surrogates kept (surrogatepass), as the Python form encodes items. */
static int add_str(ItemSet *s, const char *prefix, size_t prefix_size, PyObject *value) {
    if (!PyUnicode_Check(value)) {
        PyErr_Format(PyExc_TypeError, "a block item must be str, not %.100s", Py_TYPE(value)->tp_name);
        return -1;
    }
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(value, &size);
    if (data != NULL)
        return set_add_bytes(s, prefix, prefix_size, data, (size_t)size) < 0 ? (PyErr_NoMemory(), -1) : 0;
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass");
    if (encoded == NULL)
        return -1;
    int rc = set_add_bytes(s, prefix, prefix_size, PyBytes_AS_STRING(encoded), (size_t)PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return rc < 0 ? (PyErr_NoMemory(), -1) : 0;
}

static int add_keys(ItemSet *s, const char *prefix, PyObject *values) {
    Py_ssize_t n = PyTuple_GET_SIZE(values);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *value = PyTuple_GET_ITEM(values, i);
        if (value == Py_None || (PyUnicode_Check(value) && PyUnicode_GET_LENGTH(value) == 0))
            continue;
        if (add_str(s, prefix, 2, value) < 0)
            return -1;
    }
    return 0;
}

typedef struct {
    const unsigned char *data;
    size_t size;
} Span;

/* An ASCII character that ends a word in any context: not a letter or digit, and not one that
 * lowercasing looks through (case-ignorable: ' . : ^ `), which would let a Greek capital sigma's
 * lowercase depend on what is beyond it. Text between two of them folds alone as it does in the
 * whole message (NFKD only decomposes, and marks sort among themselves). */
static int is_boundary[128];

static void boundaries_init(void) {
    for (int c = 0; c < 128; c++)
        is_boundary[c] = !is_word[c] && c != '\'' && c != '.' && c != ':' && c != '^' && c != '`';
}

/* A message with non-ASCII text: its all-ASCII pieces (between boundaries) are scanned here, the
 * others appended to `others` for Python's folding, each once (`pieces`: those seen). */
static int add_mixed_words(ItemSet *s, ItemSet *pieces, PyObject *message, PyObject *others) {
    int kind = PyUnicode_KIND(message);
    const void *data = PyUnicode_DATA(message);
    Py_ssize_t n = PyUnicode_GET_LENGTH(message), start = 0;
    while (start < n) {
        Py_UCS4 c = PyUnicode_READ(kind, data, start);
        if (c < 128 && is_boundary[c]) {
            start++;
            continue;
        }
        Py_ssize_t end = start;
        int wide = 0;
        for (; end < n; end++) {
            c = PyUnicode_READ(kind, data, end);
            if (c < 128 && is_boundary[c])
                break;
            wide |= c >= 128;
        }
        if (wide) {         /* its code points as the key (sizes a multiple of 4: aligned) */
            size_t size = (size_t)(end - start) * sizeof(Py_UCS4);
            Py_UCS4 *out = (Py_UCS4 *)set_reserve(pieces, size);
            int added = -1;
            if (out != NULL) {
                for (Py_ssize_t i = start; i < end; i++)
                    out[i - start] = PyUnicode_READ(kind, data, i);
                added = set_add(pieces, size);
            }
            if (added < 0) {
                PyErr_NoMemory();
                return -1;
            }
            PyObject *piece = added ? PyUnicode_Substring(message, start, end) : NULL;
            if (added && (piece == NULL || PyList_Append(others, piece) < 0)) {
                Py_XDECREF(piece);
                return -1;
            }
            Py_XDECREF(piece);
        } else {
            size_t size = (size_t)(end - start);
            unsigned char small[256];
            unsigned char *copy = size <= sizeof(small) ? small : PyMem_Malloc(size);
            if (copy == NULL) {
                PyErr_NoMemory();
                return -1;
            }
            for (size_t i = 0; i < size; i++)
                copy[i] = (unsigned char)PyUnicode_READ(kind, data, start + (Py_ssize_t)i);
            int rc = add_ascii_words(s, copy, size);
            if (copy != small)
                PyMem_Free(copy);
            if (rc < 0) {
                PyErr_NoMemory();
                return -1;
            }
        }
        start = end;
    }
    return 0;
}

static PyObject *bloom(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *messages_in, *requests_in, *users_in, *tokens;
    int bits_per_item, hashes, min_bits = 64;
    if (!PyArg_ParseTuple(args, "OOOOii|i", &messages_in, &requests_in, &users_in, &tokens, &bits_per_item, &hashes,
                          &min_bits))
        return NULL;
    if (bits_per_item < 1 || bits_per_item > 64 || hashes < 1 || hashes > 32 || min_bits < 8 || min_bits > (1 << 20)) {
        PyErr_SetString(PyExc_ValueError, "bits_per_item must be 1..64, hashes 1..32 and min_bits 8..2^20");
        return NULL;
    }
    /* Tuples hold the values alive (and unchanged) while the GIL is let go. */
    PyObject *messages = PySequence_Tuple(messages_in);
    PyObject *requests = messages ? PySequence_Tuple(requests_in) : NULL;
    PyObject *users = requests ? PySequence_Tuple(users_in) : NULL;
    Span *spans = NULL;
    unsigned char *filter = NULL;
    PyObject *result = NULL, *others = NULL;
    ItemSet set, pieces;
    int pieces_ready = set_init(&pieces) == 0;
    if (set_init(&set) < 0 || !pieces_ready) {
        PyErr_NoMemory();
        goto done;
    }
    if (users == NULL)
        goto done;
    Py_ssize_t count = PyTuple_GET_SIZE(messages), ascii = 0;
    spans = PyMem_Malloc((size_t)(count ? count : 1) * sizeof(Span));
    others = PyList_New(0);
    if (spans == NULL || others == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *message = PyTuple_GET_ITEM(messages, i);
        if (!PyUnicode_Check(message)) {
            PyErr_Format(PyExc_TypeError, "a message must be str, not %.100s", Py_TYPE(message)->tp_name);
            goto done;
        }
        if (PyUnicode_IS_ASCII(message))
            spans[ascii++] = (Span){PyUnicode_1BYTE_DATA(message), (size_t)PyUnicode_GET_LENGTH(message)};
        else if (add_mixed_words(&set, &pieces, message, others) < 0)
            goto done;
    }
    if (PyList_GET_SIZE(others) > 0) {      /* one call folds them all: "\n" separates words */
        PyObject *newline = PyUnicode_FromString("\n");
        PyObject *text = newline ? PyUnicode_Join(newline, others) : NULL;
        Py_XDECREF(newline);
        PyObject *words = text ? PyObject_CallOneArg(tokens, text) : NULL;
        Py_XDECREF(text);
        PyObject *fast = words ? PySequence_Fast(words, "tokens() must return a sequence") : NULL;
        Py_XDECREF(words);
        if (fast == NULL)
            goto done;
        for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(fast); j++) {
            if (add_str(&set, "", 0, PySequence_Fast_GET_ITEM(fast, j)) < 0) {
                Py_DECREF(fast);
                goto done;
            }
        }
        Py_DECREF(fast);
    }
    if (add_keys(&set, "\x01r", requests) < 0 || add_keys(&set, "\x01u", users) < 0)
        goto done;
    int failed = 0;
    size_t bits = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < ascii && !failed; i++)
        failed = add_ascii_words(&set, spans[i].data, spans[i].size) < 0;
    if (!failed && set.count > (SIZE_MAX / 8) / (size_t)bits_per_item)
        failed = 1;
    if (!failed) {
        bits = set.count * (size_t)bits_per_item;
        bits = bits < (size_t)min_bits ? (size_t)min_bits : bits;
        bits += (8 - bits % 8) % 8;
        filter = PyMem_RawCalloc(bits / 8, 1);
        failed = filter == NULL;
    }
    for (size_t i = 0; !failed && i < set.count; i++) {
        uint64_t hash = mix64(crc32_of(set.arena + set.items[i].offset, set.items[i].size));
        uint64_t h1 = hash & 0xFFFFFFFFu, h2 = (hash >> 32) | 1;
        for (int k = 0; k < hashes; k++) {
            uint64_t p = (h1 + (uint64_t)k * h2) % bits;
            filter[p >> 3] |= (unsigned char)(1u << (p & 7));
        }
    }
    Py_END_ALLOW_THREADS
    if (failed)
        PyErr_NoMemory();
    else
        result = PyBytes_FromStringAndSize((const char *)filter, (Py_ssize_t)(bits / 8));
done:
    PyMem_RawFree(filter);
    PyMem_Free(spans);
    set_free(&set);
    set_free(&pieces);
    Py_XDECREF(others);
    Py_XDECREF(messages);
    Py_XDECREF(requests);
    Py_XDECREF(users);
    return result;
}

/* -- rows of columns ------------------------------------------------------------------------ */

/* (a sequence, a size) arguments: the sequence as a list or tuple (a new reference). */
static PyObject *sequence_and_size(PyObject *args, Py_ssize_t *size, const char *what) {
    PyObject *sequence;
    if (!PyArg_ParseTuple(args, "On", &sequence, size))
        return NULL;
    return PySequence_Fast(sequence, what);
}

static PyObject *rows(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t count;
    PyObject *columns = sequence_and_size(args, &count, "columns must be a sequence");
    if (columns == NULL)
        return NULL;
    Py_ssize_t width = PySequence_Fast_GET_SIZE(columns);
    PyObject ***column_items = PyMem_Malloc((size_t)(width ? width : 1) * sizeof(PyObject **));
    PyObject *result = NULL;
    if (column_items == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t c = 0; c < width; c++) {
        PyObject *column = PySequence_Fast_GET_ITEM(columns, c);
        if (!(PyList_Check(column) || PyTuple_Check(column)) || PySequence_Fast_GET_SIZE(column) != count) {
            PyErr_Format(PyExc_ValueError, "column %zd is not a list of %zd values", c, count);
            goto done;
        }
        column_items[c] = PySequence_Fast_ITEMS(column);
    }
    result = PyList_New(count);
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *row = PyList_New(width);
        if (row == NULL) {
            Py_CLEAR(result);
            break;
        }
        int atoms = 1;
        for (Py_ssize_t c = 0; c < width; c++) {
            PyObject *value = column_items[c][i];
            atoms &= value == Py_None || PyLong_CheckExact(value) || PyUnicode_CheckExact(value)
                     || PyBytes_CheckExact(value) || PyFloat_CheckExact(value);
            Py_INCREF(value);
            PyList_SET_ITEM(row, c, value);
        }
        if (atoms)
            PyObject_GC_UnTrack(row);
        PyList_SET_ITEM(result, i, row);
    }
done:
    PyMem_Free(column_items);
    Py_DECREF(columns);
    return result;
}

/* -- a string column and the link prefixes -------------------------------------------------- */

static int append(char **buffer, size_t *used, size_t *room, const char *data, size_t size) {
    if (*room - *used < size) {
        size_t want = *room ? *room : 4096;
        while (want - *used < size) {
            if (want > SIZE_MAX / 2)
                return -1;
            want *= 2;
        }
        char *grown = PyMem_Realloc(*buffer, want);
        if (grown == NULL)
            return -1;
        *buffer = grown;
        *room = want;
    }
    memcpy(*buffer + *used, data, size);
    *used += size;
    return 0;
}

static PyObject *str_column(PyObject *self, PyObject *values_in) {
    (void)self;
    PyObject *values = PySequence_Fast(values_in, "a column must be a sequence");
    if (values == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(values);
    char *buffer = NULL;
    size_t used = 0, room = 0;
    int has_none = 0, has_empty = 0, plain = 1;
    PyObject *result = NULL;
    for (Py_ssize_t i = 0; i < count && plain; i++) {
        PyObject *value = PySequence_Fast_GET_ITEM(values, i);
        if (i > 0 && append(&buffer, &used, &room, "", 1) < 0)
            goto nomemory;
        if (value == Py_None) {
            has_none = 1;
            continue;
        }
        if (!PyUnicode_Check(value)) {
            PyErr_Format(PyExc_TypeError, "a str column holds %.100s", Py_TYPE(value)->tp_name);
            goto done;
        }
        Py_ssize_t size;
        PyObject *encoded = NULL;
        const char *data = PyUnicode_AsUTF8AndSize(value, &size);
        if (data == NULL) {
            PyErr_Clear();
            encoded = PyUnicode_AsEncodedString(value, "utf-8", "surrogatepass");
            if (encoded == NULL)
                goto done;
            data = PyBytes_AS_STRING(encoded);
            size = PyBytes_GET_SIZE(encoded);
        }
        has_empty |= size == 0;
        plain = memchr(data, 0, (size_t)size) == NULL;
        int failed = plain && append(&buffer, &used, &room, data, (size_t)size) < 0;
        Py_XDECREF(encoded);
        if (failed)
            goto nomemory;
    }
    if (!plain)
        result = Py_NewRef(Py_None);
    else
        result = Py_BuildValue("(y#OO)", buffer ? buffer : "", (Py_ssize_t)used, has_none ? Py_True : Py_False,
                               has_empty ? Py_True : Py_False);
    goto done;
nomemory:
    PyErr_NoMemory();
done:
    PyMem_Free(buffer);
    Py_DECREF(values);
    return result;
}

/* int_column(values, delta) -> bytes | None: an integer column as array("q") keeps it, each value
 * or (delta) its difference from the value before (the first's from 0), in native order. None
 * when a value is None or a value or difference needs more than 64 bits: the caller keeps such a
 * column as JSON. TypeError for a value that is not an int. */
static PyObject *int_column(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *values_in;
    int delta;
    if (!PyArg_ParseTuple(args, "Op:int_column", &values_in, &delta))
        return NULL;
    PyObject *values = PySequence_Fast(values_in, "values must be a sequence");
    if (values == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(values);
    PyObject *packed = count <= PY_SSIZE_T_MAX / 8 ? PyBytes_FromStringAndSize(NULL, count * 8) : PyErr_NoMemory();
    char *out = packed != NULL ? PyBytes_AS_STRING(packed) : NULL;
    long long before = 0;
    for (Py_ssize_t i = 0; packed != NULL && i < count; i++) {
        PyObject *value = PySequence_Fast_GET_ITEM(values, i);
        int overflow = 0;
        long long number = 0, stored;
        if (value == Py_None) {
            Py_CLEAR(packed);
            packed = Py_NewRef(Py_None);
            break;
        }
        if (!PyLong_Check(value)) {
            PyErr_Format(PyExc_TypeError, "an integer column holds a %.100s", Py_TYPE(value)->tp_name);
            Py_CLEAR(packed);
            break;
        }
        number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred()) {
            Py_CLEAR(packed);
            break;
        }
        if (overflow || (delta && __builtin_sub_overflow(number, before, &stored))) {
            Py_CLEAR(packed);
            packed = Py_NewRef(Py_None);
            break;
        }
        if (!delta)
            stored = number;
        before = number;
        memcpy(out + 8 * i, &stored, 8);
    }
    Py_DECREF(values);
    return packed;
}

static PyObject *link_prefixes(PyObject *self, PyObject *args) {
    (void)self;
    Py_ssize_t size;
    PyObject *links = sequence_and_size(args, &size, "links must be a sequence"), *result = NULL;
    Py_ssize_t count = links ? PySequence_Fast_GET_SIZE(links) : 0;
    if (links != NULL)
        result = size >= 0 && count <= PY_SSIZE_T_MAX / (size ? size : 1)
            ? PyBytes_FromStringAndSize(NULL, count * size) : PyErr_Format(PyExc_ValueError, "bad prefix size");
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *link = PySequence_Fast_GET_ITEM(links, i);
        if (!PyBytes_Check(link) || PyBytes_GET_SIZE(link) < size) {
            PyErr_SetString(PyExc_ValueError, "a link shorter than its prefix, or not bytes");
            Py_CLEAR(result);
            break;
        }
        memcpy(PyBytes_AS_STRING(result) + i * size, PyBytes_AS_STRING(link), (size_t)size);
    }
    Py_XDECREF(links);
    return result;
}

static PyObject *split(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "y*n", &data, &size))
        return NULL;
    PyObject *result = NULL;
    if (size <= 0 || data.len % size != 0) {
        PyErr_SetString(PyExc_ValueError, "data is not a whole number of pieces");
        goto done;
    }
    result = PyList_New(data.len / size);
    for (Py_ssize_t i = 0; result != NULL && i < data.len / size; i++) {
        PyObject *piece = PyBytes_FromStringAndSize((const char *)data.buf + i * size, size);
        if (piece == NULL)
            Py_CLEAR(result);
        else
            PyList_SET_ITEM(result, i, piece);
    }
done:
    PyBuffer_Release(&data);
    return result;
}

static PyObject *origin_spans(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *origins_in, *positions_in;
    if (!PyArg_ParseTuple(args, "OO", &origins_in, &positions_in))
        return NULL;
    PyObject *origins = PySequence_Fast(origins_in, "origins must be a sequence");
    PyObject *positions = origins ? PySequence_Fast(positions_in, "positions must be a sequence") : NULL;
    PyObject *spans = positions ? PyDict_New() : NULL;
    Py_ssize_t count = origins ? PySequence_Fast_GET_SIZE(origins) : 0;
    if (spans != NULL && PySequence_Fast_GET_SIZE(positions) != count) {
        PyErr_SetString(PyExc_ValueError, "as many positions as origins");
        Py_CLEAR(spans);
    }
    for (Py_ssize_t i = 0; spans != NULL && i < count; i++) {
        PyObject *origin = PySequence_Fast_GET_ITEM(origins, i), *pos = PySequence_Fast_GET_ITEM(positions, i);
        PyObject *span = PyDict_GetItemWithError(spans, origin), *low = pos, *high = pos;
        if (span == NULL && PyErr_Occurred()) {
            Py_CLEAR(spans);
            break;
        }
        if (span != NULL) {
            low = PyTuple_GET_ITEM(span, 0);
            high = PyTuple_GET_ITEM(span, 1);
            int below = PyObject_RichCompareBool(pos, low, Py_LT);
            int above = below < 0 ? -1 : PyObject_RichCompareBool(pos, high, Py_GT);
            if (above < 0) {
                Py_CLEAR(spans);
                break;
            }
            if (!below && !above)
                continue;
            low = below ? pos : low;
            high = above ? pos : high;
        }
        PyObject *pair = PyTuple_Pack(2, low, high);
        if (pair == NULL || PyDict_SetItem(spans, origin, pair) < 0)
            Py_CLEAR(spans);
        Py_XDECREF(pair);
    }
    Py_XDECREF(origins);
    Py_XDECREF(positions);
    return spans;
}

/* -- BLAKE2b (RFC 7693), unkeyed, for the derived event ids ----------------------------------- */

typedef struct {
    uint64_t h[8], t;
    unsigned char buffer[128];
    size_t filled;
    size_t out;
} Blake2b;

static const uint64_t blake2b_iv[8] = {
    0x6A09E667F3BCC908ull, 0xBB67AE8584CAA73Bull, 0x3C6EF372FE94F82Bull, 0xA54FF53A5F1D36F1ull,
    0x510E527FADE682D1ull, 0x9B05688C2B3E6C1Full, 0x1F83D9ABFB41BD6Bull, 0x5BE0CD19137E2179ull,
};

static const unsigned char sigma[10][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4},
    {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13},
    {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11},
    {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5},
    {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
};

static uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

#define G(a, b, c, d, x, y)              \
    do {                                 \
        v[a] = v[a] + v[b] + (x);        \
        v[d] = rotr64(v[d] ^ v[a], 32);  \
        v[c] = v[c] + v[d];              \
        v[b] = rotr64(v[b] ^ v[c], 24);  \
        v[a] = v[a] + v[b] + (y);        \
        v[d] = rotr64(v[d] ^ v[a], 16);  \
        v[c] = v[c] + v[d];              \
        v[b] = rotr64(v[b] ^ v[c], 63);  \
    } while (0)

static void blake2b_compress(Blake2b *b, int last) {
    uint64_t m[16], v[16];
    for (int i = 0; i < 16; i++) {
        uint64_t word = 0;
        for (int j = 7; j >= 0; j--)
            word = (word << 8) | b->buffer[8 * i + j];
        m[i] = word;
    }
    for (int i = 0; i < 8; i++) {
        v[i] = b->h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= b->t;      /* the byte counter's high word stays 0: ids hash a few dozen bytes */
    if (last)
        v[14] = ~v[14];
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 12      /* constant sigma indexes: the message words stay in registers */
#endif
    for (int r = 0; r < 12; r++) {
        const unsigned char *s = sigma[r % 10];
        G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++)
        b->h[i] ^= v[i] ^ v[i + 8];
}

static void blake2b_init(Blake2b *b, size_t out) {
    memcpy(b->h, blake2b_iv, sizeof(b->h));
    b->h[0] ^= 0x01010000ull ^ (uint64_t)out;
    b->t = 0;
    b->filled = 0;
    b->out = out;
}

static void blake2b_update(Blake2b *b, const unsigned char *data, size_t size) {
    while (size > 0) {
        if (b->filled == 128) {     /* full, and more follows: not the last block */
            b->t += 128;
            blake2b_compress(b, 0);
            b->filled = 0;
        }
        size_t take = 128 - b->filled < size ? 128 - b->filled : size;
        memcpy(b->buffer + b->filled, data, take);
        b->filled += take;
        data += take;
        size -= take;
    }
}

static void blake2b_hex(Blake2b *b, char *hex) {
    static const char digits[] = "0123456789abcdef";
    b->t += b->filled;
    memset(b->buffer + b->filled, 0, 128 - b->filled);
    blake2b_compress(b, 1);
    for (size_t i = 0; i < b->out; i++) {
        unsigned char byte = (unsigned char)(b->h[i / 8] >> (8 * (i % 8)));
        hex[2 * i] = digits[byte >> 4];
        hex[2 * i + 1] = digits[byte & 15];
    }
}

/* The prefix state of one source: "host NUL source_key NUL" hashed. */
static int prefix_state(PyObject *host, PyObject *key, Blake2b *state) {
    Py_ssize_t host_size, key_size;
    const char *host_utf8 = PyUnicode_AsUTF8AndSize(host, &host_size);
    const char *key_utf8 = host_utf8 ? PyUnicode_AsUTF8AndSize(key, &key_size) : NULL;
    if (key_utf8 == NULL)
        return -1;
    blake2b_init(state, 16);
    blake2b_update(state, (const unsigned char *)host_utf8, (size_t)host_size);
    blake2b_update(state, (const unsigned char *)"", 1);
    blake2b_update(state, (const unsigned char *)key_utf8, (size_t)key_size);
    blake2b_update(state, (const unsigned char *)"", 1);
    return 0;
}

/* The prefix state of one origin, whose (host, source_key) is source_keys[origin]. */
static int origin_state(PyObject *source_keys, PyObject *origin, Blake2b *state) {
    PyObject *pair = PyObject_GetItem(source_keys, origin);
    if (pair == NULL)
        return -1;
    PyObject *host = NULL, *key = NULL;
    int rc = PyArg_ParseTuple(pair, "UU", &host, &key) ? prefix_state(host, key, state) : -1;
    Py_DECREF(pair);
    return rc;
}

/* The hex id of a position that is a 64-bit integer, from its source's prefix state: hashes the
 * decimal digits str(pos) gives. Touches no Python object (event_ids runs it without the GIL). */
static void number_id(const Blake2b *prefix, long long number, char *hex) {
    Blake2b b = *prefix;
    char digits[24], text[24];
    size_t count = 0, size = 0;
    unsigned long long rest = number < 0 ? 0ull - (unsigned long long)number : (unsigned long long)number;
    do {
        digits[count++] = (char)('0' + rest % 10);
        rest /= 10;
    } while (rest);
    if (number < 0)
        text[size++] = '-';
    while (count)
        text[size++] = digits[--count];
    blake2b_update(&b, (const unsigned char *)text, size);
    blake2b_hex(&b, hex);
}

static PyObject *event_id_of(const Blake2b *prefix, PyObject *pos) {
    int overflow = 0;
    long long number = PyLong_Check(pos) ? PyLong_AsLongLongAndOverflow(pos, &overflow) : 0;
    PyObject *id = NULL;
    if (PyLong_CheckExact(pos) && !overflow) {
        if ((id = PyUnicode_New(32, 127)) != NULL)
            number_id(prefix, number, (char *)PyUnicode_1BYTE_DATA(id));
        return id;
    }
    /* what str(pos) gives, as the Python form hashes */
    Blake2b b = *prefix;
    PyObject *text = PyObject_Str(pos);
    if (text == NULL)
        return NULL;
    Py_ssize_t size;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &size);
    if (utf8 == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    blake2b_update(&b, (const unsigned char *)utf8, (size_t)size);
    Py_DECREF(text);
    if ((id = PyUnicode_New(32, 127)) != NULL)
        blake2b_hex(&b, (char *)PyUnicode_1BYTE_DATA(id));
    return id;
}

static PyObject *fill_ids(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rows_list, *source_keys, *last_origin = NULL;
    Py_ssize_t id_col, origin_col, pos_col;
    if (!PyArg_ParseTuple(args, "O!nnnO", &PyList_Type, &rows_list, &id_col, &origin_col, &pos_col, &source_keys))
        return NULL;
    Blake2b prefix;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows_list); i++) {
        PyObject *row = PyList_GET_ITEM(rows_list, i);
        Py_ssize_t width = PyList_Check(row) ? PyList_GET_SIZE(row) : -1;
        if (width <= id_col || width <= origin_col || width <= pos_col || id_col < 0 || origin_col < 0 || pos_col < 0) {
            PyErr_SetString(PyExc_ValueError, "a row is not a list of the block's columns");
            goto fail;
        }
        if (PyList_GET_ITEM(row, id_col) != Py_None)
            continue;
        PyObject *origin = PyList_GET_ITEM(row, origin_col);
        int same = last_origin != NULL ? PyObject_RichCompareBool(origin, last_origin, Py_EQ) : 0;
        if (same < 0)
            goto fail;
        if (!same) {
            if (origin_state(source_keys, origin, &prefix) < 0)
                goto fail;
            Py_INCREF(origin);
            Py_XSETREF(last_origin, origin);
        }
        PyObject *id = event_id_of(&prefix, PyList_GET_ITEM(row, pos_col));
        if (id == NULL)
            goto fail;
        PyList_SetItem(row, id_col, id);
    }
    Py_XDECREF(last_origin);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(last_origin);
    return NULL;
}

/* event_ids(host, source_key, positions) -> list[str]: the derived id of each position of one
 * source (what fill_ids puts into rows), for the intake to make while it prepares a batch. The
 * hashing, most of the cost, holds no GIL when every position is a 64-bit int (as received):
 * the collector's writer thread runs meanwhile. */
static PyObject *event_ids(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *host, *key, *positions_in;
    if (!PyArg_ParseTuple(args, "UUO:event_ids", &host, &key, &positions_in))
        return NULL;
    Blake2b prefix;
    if (prefix_state(host, key, &prefix) < 0)
        return NULL;
    PyObject *positions = PySequence_Fast(positions_in, "positions must be a sequence"), *ids = NULL;
    if (positions == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(positions);
    long long *numbers = PyMem_Malloc((size_t)(count ? count : 1) * sizeof *numbers);
    char *hex = PyMem_Malloc((size_t)(count ? count : 1) * 32);
    if (numbers == NULL || hex == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    int plain = 1;      /* every position an int of 64 bits: hashed from `numbers` without the GIL */
    for (Py_ssize_t i = 0; i < count && plain; i++) {
        PyObject *pos = PySequence_Fast_GET_ITEM(positions, i);
        int overflow = 0;
        if (PyLong_CheckExact(pos))
            numbers[i] = PyLong_AsLongLongAndOverflow(pos, &overflow);   /* an exact int: no error */
        plain = PyLong_CheckExact(pos) && !overflow;
    }
    if ((ids = PyList_New(count)) == NULL)
        goto done;
    if (plain) {
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < count; i++)
            number_id(&prefix, numbers[i], hex + 32 * i);
        Py_END_ALLOW_THREADS
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *id = plain ? PyUnicode_New(32, 127) : event_id_of(&prefix, PySequence_Fast_GET_ITEM(positions, i));
        if (id == NULL) {
            Py_CLEAR(ids);
            goto done;
        }
        if (plain)
            memcpy(PyUnicode_1BYTE_DATA(id), hex + 32 * i, 32);
        PyList_SET_ITEM(ids, i, id);
    }
done:
    PyMem_Free(numbers);
    PyMem_Free(hex);
    Py_DECREF(positions);
    return ids;
}

/* -- reading ------------------------------------------------------------------------------- */

/* bloom_holds_any(bloom, pairs, hashes) -> bool: whether the filter may hold one of the items
 * whose (h1, h2) (blocks.item_hashes) are `pairs`: the test a request-id or user search makes of
 * every block's filter, so its cost is the search's over a store of many blocks. */
static PyObject *bloom_holds_any(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer bloom;
    PyObject *pairs;
    int hashes;
    if (!PyArg_ParseTuple(args, "y*Oi", &bloom, &pairs, &hashes))
        return NULL;
    PyObject *fast = PySequence_Fast(pairs, "pairs must be a sequence");
    if (fast == NULL) {
        PyBuffer_Release(&bloom);
        return NULL;
    }
    const unsigned char *bytes = bloom.buf;
    uint64_t bits = (uint64_t)bloom.len * 8;
    int found = 0, failed = 0;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(fast) && !found && bits; j++) {
        unsigned long long h1, h2;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, j), "KK", &h1, &h2)) {
            failed = 1;
            break;
        }
        int all = 1;
        for (int k = 0; k < hashes && all; k++) {
            uint64_t p = ((uint64_t)h1 + (uint64_t)k * (uint64_t)h2) % bits;
            all = (bytes[p >> 3] >> (p & 7)) & 1;
        }
        found = all;
    }
    Py_DECREF(fast);
    PyBuffer_Release(&bloom);
    if (failed)
        return NULL;
    return PyBool_FromLong(found);
}

/* pick_strs(data, indexes) -> list[str]: values `indexes` (ascending) of a string column's
 * section (UTF-8 values joined by NUL, blocks._encode_str), decoded with surrogatepass; what a
 * search that keeps a few events of a block builds instead of splitting the whole column.
 * IndexError for an index past the values. */
static PyObject *pick_strs(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    PyObject *indexes;
    if (!PyArg_ParseTuple(args, "y*O", &data, &indexes))
        return NULL;
    PyObject *fast = PySequence_Fast(indexes, "indexes must be a sequence");
    PyObject *out = fast ? PyList_New(PySequence_Fast_GET_SIZE(fast)) : NULL;
    if (out == NULL)
        goto fail;
    const char *at = data.buf, *end = (const char *)data.buf + data.len;
    Py_ssize_t current = 0, last = -1;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(fast); j++) {
        Py_ssize_t want = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, j));
        if (want == -1 && PyErr_Occurred())
            goto fail;
        if (want < last || want < 0) {
            PyErr_SetString(PyExc_ValueError, "indexes must be >= 0 and ascend");
            goto fail;
        }
        last = want;
        while (current < want) {        /* skip to value `want` */
            const char *nul = memchr(at, 0, (size_t)(end - at));
            if (nul == NULL) {
                PyErr_Format(PyExc_IndexError, "value %zd of a column of %zd", want, current + 1);
                goto fail;
            }
            at = nul + 1;
            current++;
        }
        const char *nul = memchr(at, 0, (size_t)(end - at));
        const char *stop = nul ? nul : end;
        PyObject *value = PyUnicode_DecodeUTF8(at, stop - at, "surrogatepass");
        if (value == NULL)
            goto fail;
        PyList_SET_ITEM(out, j, value);
    }
    Py_DECREF(fast);
    PyBuffer_Release(&data);
    return out;
fail:
    Py_XDECREF(out);
    Py_XDECREF(fast);
    PyBuffer_Release(&data);
    return NULL;
}

/* pick_ints(data, delta, indexes) -> list[int]: values `indexes` (ascending) of an integer
 * column's section (int64 in the machine's order, blocks._encode_int), summed from the start
 * when `delta`. IndexError for an index past the values. */
static PyObject *pick_ints(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data;
    int delta;
    PyObject *indexes;
    if (!PyArg_ParseTuple(args, "y*pO", &data, &delta, &indexes))
        return NULL;
    PyObject *fast = PySequence_Fast(indexes, "indexes must be a sequence");
    PyObject *out = fast ? PyList_New(PySequence_Fast_GET_SIZE(fast)) : NULL;
    if (out == NULL)
        goto fail;
    Py_ssize_t count = data.len / (Py_ssize_t)sizeof(int64_t), summed = 0, last = -1;
    uint64_t sum = 0;
    for (Py_ssize_t j = 0; j < PySequence_Fast_GET_SIZE(fast); j++) {
        Py_ssize_t want = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, j));
        if (want == -1 && PyErr_Occurred())
            goto fail;
        if (want < last || want < 0 || want >= count) {
            PyErr_Format(want < last ? PyExc_ValueError : PyExc_IndexError, "index %zd of %zd values", want, count);
            goto fail;
        }
        last = want;
        int64_t value;
        if (delta) {
            /* Summed as uint64 (wrapping): exact whenever the value fits in int64, which every
             * value the encoder's deltas came from does. */
            for (; summed <= want; summed++) {
                int64_t step;
                memcpy(&step, (const char *)data.buf + summed * (Py_ssize_t)sizeof(int64_t), sizeof step);
                sum += (uint64_t)step;
            }
            value = (int64_t)sum;
        } else {
            memcpy(&value, (const char *)data.buf + want * (Py_ssize_t)sizeof(int64_t), sizeof value);
        }
        PyObject *number = PyLong_FromLongLong(value);
        if (number == NULL)
            goto fail;
        PyList_SET_ITEM(out, j, number);
    }
    Py_DECREF(fast);
    PyBuffer_Release(&data);
    return out;
fail:
    Py_XDECREF(out);
    Py_XDECREF(fast);
    PyBuffer_Release(&data);
    return NULL;
}

/* -- ingest: fields_json values that are certainly JSON objects ------------------------------ */

/* A strict subset of what json.loads takes as an object: RFC 8259 with ASCII outside strings,
 * nesting at most JSON_DEPTH deep. Whatever this does not certify (NaN, Infinity, deeper
 * nesting, a syntax error) the caller hands to json.loads itself, so it never decides "no". */
#define JSON_DEPTH 64

static const unsigned char *json_ws(const unsigned char *p, const unsigned char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

static const unsigned char *json_value(const unsigned char *p, const unsigned char *end, int depth);

static const unsigned char *json_string(const unsigned char *p, const unsigned char *end) {
    if (p >= end || *p != '"')
        return NULL;
    for (p++; p < end; p++) {
        unsigned char c = *p;
        if (c == '"')
            return p + 1;
        if (c < 0x20)
            return NULL;
        if (c == '\\') {
            if (++p >= end)
                return NULL;
            if (*p == 'u') {
                for (int k = 0; k < 4; k++) {
                    if (++p >= end || !((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f') || (*p >= 'A' && *p <= 'F')))
                        return NULL;
                }
            } else if (!strchr("\"\\/bfnrt", *p) || *p == 0) {
                return NULL;
            }
        }
    }
    return NULL;
}

static const unsigned char *json_digits(const unsigned char *p, const unsigned char *end) {
    const unsigned char *start = p;
    while (p < end && *p >= '0' && *p <= '9')
        p++;
    return p > start ? p : NULL;
}

static const unsigned char *json_number(const unsigned char *p, const unsigned char *end) {
    if (p < end && *p == '-')
        p++;
    if (p < end && *p == '0')
        p++;
    else if ((p = json_digits(p, end)) == NULL)
        return NULL;
    if (p < end && *p == '.' && (p = json_digits(p + 1, end)) == NULL)
        return NULL;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if ((p = json_digits(p, end)) == NULL)
            return NULL;
    }
    return p;
}

static const unsigned char *json_literal(const unsigned char *p, const unsigned char *end, const char *word) {
    size_t size = strlen(word);
    return (size_t)(end - p) >= size && memcmp(p, word, size) == 0 ? p + size : NULL;
}

static const unsigned char *json_container(const unsigned char *p, const unsigned char *end, int depth) {
    unsigned char close = *p == '{' ? '}' : ']';
    int object = close == '}';
    if (depth >= JSON_DEPTH)
        return NULL;
    p = json_ws(p + 1, end);
    if (p < end && *p == close)
        return p + 1;
    for (;;) {
        if (object) {
            if ((p = json_string(p, end)) == NULL)
                return NULL;
            p = json_ws(p, end);
            if (p >= end || *p != ':')
                return NULL;
            p = json_ws(p + 1, end);
        }
        if ((p = json_value(p, end, depth + 1)) == NULL)
            return NULL;
        p = json_ws(p, end);
        if (p < end && *p == close)
            return p + 1;
        if (p >= end || *p != ',')
            return NULL;
        p = json_ws(p + 1, end);
    }
}

static const unsigned char *json_value(const unsigned char *p, const unsigned char *end, int depth) {
    if (p >= end)
        return NULL;
    switch (*p) {
    case '{': case '[': return json_container(p, end, depth);
    case '"': return json_string(p, end);
    case 't': return json_literal(p, end, "true");
    case 'f': return json_literal(p, end, "false");
    case 'n': return json_literal(p, end, "null");
    default: return (*p == '-' || (*p >= '0' && *p <= '9')) ? json_number(p, end) : NULL;
    }
}

static PyObject *uncertain_objects(PyObject *self, PyObject *values_in) {
    (void)self;
    PyObject *values = PySequence_Fast(values_in, "values must be a sequence");
    if (values == NULL)
        return NULL;
    PyObject *uncertain = PyList_New(0);
    for (Py_ssize_t i = 0; uncertain != NULL && i < PySequence_Fast_GET_SIZE(values); i++) {
        PyObject *value = PySequence_Fast_GET_ITEM(values, i);
        Py_ssize_t size = 0;
        const char *text = PyUnicode_Check(value) ? PyUnicode_AsUTF8AndSize(value, &size) : NULL;
        if (text == NULL)
            PyErr_Clear();          /* not a str, or a lone surrogate: json.loads decides */
        else if (size == 0)
            continue;
        else {
            const unsigned char *p = json_ws((const unsigned char *)text, (const unsigned char *)text + size);
            const unsigned char *end = (const unsigned char *)text + size;
            if (p < end && *p == '{' && (p = json_container(p, end, 0)) != NULL && json_ws(p, end) == end)
                continue;
        }
        PyObject *index = PyLong_FromSsize_t(i);
        if (index == NULL || PyList_Append(uncertain, index) < 0)
            Py_CLEAR(uncertain);
        Py_XDECREF(index);
    }
    Py_DECREF(values);
    return uncertain;
}

/* -- ingest: a relayed event's fields text with the relay's members appended ------------------ */

/* relayed_fields(texts, claims, host, relay_member, claim_member) -> (texts, fallbacks)
 *
 * collector/ingest.py's _relayed_fields for the usual text, in one call instead of a Python step an
 * event: an ASCII fields text ("" or a JSON object already checked, ending in a member and "}",
 * with no backslash, "relay" or "claimed_host" in it) gets ,"relay":... and, where claims[i] is not
 * empty and not `host`, ,"claimed_host":... appended before its "}". relay_member is the ASCII
 * text '"relay":<name>'; claim_member(claim) gives ',"claimed_host":<claim>' (asked once for a
 * run of the same claim). Every other text is None in the result and its index is in
 * `fallbacks`: the caller rewrites those through json. */
static int value_end(Py_UCS1 c) {
    return c == '"' || (c >= '0' && c <= '9') || c == 'e' || c == 'l' || c == '}' || c == ']';
}

static int contains(const char *text, Py_ssize_t size, const char *needle, Py_ssize_t needle_size) {
    for (const char *at = text, *end = text + size - needle_size + 1; at < end; at++) {
        if ((at = memchr(at, needle[0], (size_t)(end - at))) == NULL)
            return 0;
        if (memcmp(at, needle, (size_t)needle_size) == 0)
            return 1;
    }
    return 0;
}

static int usual_text(const char *text, Py_ssize_t size) {
    return size >= 2 && text[size - 1] == '}' && value_end((Py_UCS1)text[size - 2]) &&
           memchr(text, '\\', (size_t)size) == NULL && !contains(text, size, "\"relay\"", 7) &&
           !contains(text, size, "\"claimed_host\"", 14);
}

static PyObject *appended(const char *text, Py_ssize_t size, const char *relay, Py_ssize_t relay_size,
                          const char *claim, Py_ssize_t claim_size) {
    /* "" -> {relay claim}; {...} -> {...,relay claim} */
    Py_ssize_t keep = size ? size - 1 : 0;     /* the text before its "}" */
    PyObject *out = PyUnicode_New(keep + 1 + relay_size + claim_size + 1, 127);
    if (out == NULL)
        return NULL;
    char *at = (char *)PyUnicode_1BYTE_DATA(out);
    memcpy(at, text, (size_t)keep);
    at[keep] = size ? ',' : '{';
    at += keep + 1;
    memcpy(at, relay, (size_t)relay_size);
    memcpy(at + relay_size, claim, (size_t)claim_size);
    at[relay_size + claim_size] = '}';
    return out;
}

static PyObject *relayed_fields(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *texts_in, *claims_in, *host, *relay_obj, *claim_member;
    if (!PyArg_ParseTuple(args, "OOUUO:relayed_fields", &texts_in, &claims_in, &host, &relay_obj, &claim_member))
        return NULL;
    if (!PyUnicode_IS_COMPACT_ASCII(relay_obj)) {
        PyErr_SetString(PyExc_ValueError, "relay_member must be ASCII");
        return NULL;
    }
    PyObject *texts = PySequence_Fast(texts_in, "texts must be a sequence");
    PyObject *claims = texts ? PySequence_Fast(claims_in, "claims must be a sequence") : NULL;
    PyObject *out = NULL, *fallbacks = NULL, *last_claim = NULL, *last_member = NULL, *result = NULL;
    if (claims == NULL)
        goto done;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(texts);
    if (PySequence_Fast_GET_SIZE(claims) != count) {
        PyErr_SetString(PyExc_ValueError, "texts and claims differ in length");
        goto done;
    }
    if ((out = PyList_New(count)) == NULL || (fallbacks = PyList_New(0)) == NULL)
        goto done;
    const char *relay = (const char *)PyUnicode_1BYTE_DATA(relay_obj);
    Py_ssize_t relay_size = PyUnicode_GET_LENGTH(relay_obj);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *text = PySequence_Fast_GET_ITEM(texts, i), *claim = PySequence_Fast_GET_ITEM(claims, i);
        const char *member = "";
        Py_ssize_t member_size = 0;
        int usual = PyUnicode_Check(text) && PyUnicode_IS_COMPACT_ASCII(text) && PyUnicode_Check(claim);
        if (usual && PyUnicode_GET_LENGTH(claim) > 0) {
            int is_host = PyUnicode_Compare(claim, host);
            if (is_host == -1 && PyErr_Occurred())
                goto done;
            if (is_host != 0) {
                if (last_claim == NULL || (claim != last_claim && PyUnicode_Compare(claim, last_claim) != 0)) {
                    Py_XDECREF(last_member);
                    if ((last_member = PyObject_CallOneArg(claim_member, claim)) == NULL)
                        goto done;
                    if (!PyUnicode_Check(last_member)) {
                        PyErr_SetString(PyExc_TypeError, "claim_member must return str");
                        goto done;
                    }
                    Py_XSETREF(last_claim, Py_NewRef(claim));
                }
                usual = PyUnicode_IS_COMPACT_ASCII(last_member);
                member = (const char *)PyUnicode_1BYTE_DATA(last_member);
                member_size = PyUnicode_GET_LENGTH(last_member);
            }
        }
        const char *data = usual ? (const char *)PyUnicode_1BYTE_DATA(text) : NULL;
        Py_ssize_t size = usual ? PyUnicode_GET_LENGTH(text) : 0;
        if (usual && (size == 0 || usual_text(data, size))) {
            PyObject *made = appended(data, size, relay, relay_size, member, member_size);
            if (made == NULL)
                goto done;
            PyList_SET_ITEM(out, i, made);
            continue;
        }
        PyObject *index = PyLong_FromSsize_t(i);
        int failed = index == NULL || PyList_Append(fallbacks, index) < 0;
        Py_XDECREF(index);
        if (failed)
            goto done;
        PyList_SET_ITEM(out, i, Py_NewRef(Py_None));
    }
    result = PyTuple_Pack(2, out, fallbacks);
done:
    Py_XDECREF(texts);
    Py_XDECREF(claims);
    Py_XDECREF(out);
    Py_XDECREF(fallbacks);
    Py_XDECREF(last_claim);
    Py_XDECREF(last_member);
    return result;
}

/* -- encode: rows back to columns ------------------------------------------------------------ */

static PyObject *columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *rows_in;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "On", &rows_in, &width))
        return NULL;
    if (width < 0) {
        PyErr_SetString(PyExc_ValueError, "a negative width");
        return NULL;
    }
    PyObject *rows_seq = PySequence_Fast(rows_in, "rows must be a sequence");
    if (rows_seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(rows_seq);
    PyObject **row_items = PySequence_Fast_ITEMS(rows_seq);
    PyObject *result = PyList_New(width);
    for (Py_ssize_t c = 0; result != NULL && c < width; c++) {
        PyObject *column = PyList_New(count);
        if (column == NULL) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, c, column);
    }
    for (Py_ssize_t i = 0; result != NULL && i < count; i++) {
        PyObject *row = row_items[i];
        if (!(PyList_Check(row) || PyTuple_Check(row)) || PySequence_Fast_GET_SIZE(row) != width) {
            PyErr_Format(PyExc_ValueError, "row %zd is not a list of %zd values", i, width);
            Py_CLEAR(result);
            break;
        }
        PyObject **values = PySequence_Fast_ITEMS(row);
        for (Py_ssize_t c = 0; c < width; c++) {
            Py_INCREF(values[c]);
            PyList_SET_ITEM(PyList_GET_ITEM(result, c), i, values[c]);
        }
    }
    Py_DECREF(rows_seq);
    return result;
}

static PyMethodDef module_methods[] = {
    {"bloom", bloom, METH_VARARGS, "The bloom filter of a block's message words, request ids and users."},
    {"rows", rows, METH_VARARGS, "Rows (lists) of equally long columns."},
    {"str_column", str_column, METH_O, "A string column's values joined by NUL, as UTF-8."},
    {"int_column", int_column, METH_VARARGS, "An integer column as array('q') bytes, or None: keep it as JSON."},
    {"link_prefixes", link_prefixes, METH_VARARGS, "The first bytes of each link, one after another."},
    {"split", split, METH_VARARGS, "Bytes cut into pieces of one size."},
    {"origin_spans", origin_spans, METH_VARARGS, "origin -> (min pos, max pos)."},
    {"fill_ids", fill_ids, METH_VARARGS, "Put the derived event id into rows whose id is None."},
    {"event_ids", event_ids, METH_VARARGS, "The derived event ids of one source's positions."},
    {"bloom_holds_any", bloom_holds_any, METH_VARARGS, "Whether a filter may hold one of some items."},
    {"pick_strs", pick_strs, METH_VARARGS, "Some values of a string column's section."},
    {"pick_ints", pick_ints, METH_VARARGS, "Some values of an integer column's section."},
    {"columns", columns, METH_VARARGS, "The columns (lists) of equally wide rows."},
    {"uncertain_objects", uncertain_objects, METH_O, "Indexes of the non-empty values not certainly JSON objects."},
    {"relayed_fields", relayed_fields, METH_VARARGS, "Relayed events' fields texts with the relay's members."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_blocks_native", "The hot loops of the compressed column block.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__blocks_native(void) {
    crc_init();
    words_init();
    boundaries_init();
    return PyModule_Create(&module);
}
