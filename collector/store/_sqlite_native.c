/* The writer's row inserts in C, with the GIL let go for the whole batch.
 *
 * Python's sqlite3 lets the GIL go around each sqlite3_step, once per row, and takes it back to
 * bind the next row. Two writer threads then hand the GIL to each other tens of thousands of times
 * a second and together store fewer rows than one (measured: 2 threads x executemany into two
 * files, 43k rows/s against 51k for one). Here the rows' values are taken out of the Python objects
 * first (pointers into the str/bytes objects the caller keeps alive), then every row of the batch
 * and its full-text index row are inserted without the GIL: the partition files of one transaction
 * are written by several threads at once (collector/store/sqlite_bulk.py), and the collector's
 * event loop runs beside them.
 *
 * It opens its own connection to a partition file. It must be the same SQLite library the sqlite3
 * module uses (one copy in the process, so both connections see each other's POSIX locks):
 * sqlite_bulk.py checks `library()` against the library the process had mapped before.
 *
 *   Connection(path: str, synchronous: str, busy_timeout_ms: int, cache_kib: int)
 *   Connection.execute(sql: str) -> None             statements without results (BEGIN, COMMIT ...)
 *   Connection.insert(rows: list[list], insert_sql: str, fts_sql: str, seq_col: int, text_col: int)
 *       -> None      every row through insert_sql (its values in order), and (row[seq_col],
 *                    row[text_col]) through fts_sql; values are None, int, str or bytes
 *   Connection.close() -> None
 *   library() -> (version: str, path of the shared object it came from)
 *
 * Errors raise `Error(message, extended_code)`; the caller makes them sqlite3 errors. A failed
 * insert leaves the transaction open for the caller to roll back. The caller must not change
 * `rows` while `insert` runs (the writer's rows are its own).
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <dlfcn.h>
#include <sqlite3.h>

static PyObject *NativeError;

enum { V_NULL, V_INT, V_TEXT, V_BLOB };

typedef struct {
    int kind;
    sqlite3_int64 number;
    const char *data;
    Py_ssize_t size;
} Value;

typedef struct {
    PyObject_HEAD
    sqlite3 *db;
} Connection;

static PyObject *raise_sqlite(sqlite3 *db, int rc) {
    int code = db ? sqlite3_extended_errcode(db) : rc;
    const char *message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    PyObject *args = Py_BuildValue("(si)", message, code);
    if (args != NULL) {
        PyErr_SetObject(NativeError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static int exec_nogil(sqlite3 *db, const char *sql) {
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    Py_END_ALLOW_THREADS
    return rc;
}

static int connection_init(Connection *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"path", "synchronous", "busy_timeout_ms", "cache_kib", NULL};
    const char *path, *synchronous;
    int busy_ms, cache_kib;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ssii", kwlist, &path, &synchronous, &busy_ms, &cache_kib))
        return -1;
    if (self->db != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "already open");
        return -1;
    }
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = sqlite3_open_v2(path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    Py_END_ALLOW_THREADS
    if (rc != SQLITE_OK) {
        raise_sqlite(self->db, rc);
        sqlite3_close(self->db);
        self->db = NULL;
        return -1;
    }
    sqlite3_busy_timeout(self->db, busy_ms);
    char pragmas[160];
    PyOS_snprintf(pragmas, sizeof pragmas,
                  "PRAGMA synchronous=%s; PRAGMA cache_size=-%d; PRAGMA temp_store=MEMORY",
                  strcmp(synchronous, "full") == 0 ? "FULL" : "NORMAL", cache_kib);
    rc = exec_nogil(self->db, pragmas);
    if (rc != SQLITE_OK) {
        raise_sqlite(self->db, rc);
        sqlite3_close(self->db);
        self->db = NULL;
        return -1;
    }
    return 0;
}

static void connection_dealloc(Connection *self) {
    if (self->db != NULL)
        sqlite3_close_v2(self->db);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_open(Connection *self) {
    if (self->db == NULL) {
        PyErr_SetString(PyExc_ValueError, "the connection is closed");
        return -1;
    }
    return 0;
}

static PyObject *connection_execute(Connection *self, PyObject *args) {
    const char *sql;
    if (!PyArg_ParseTuple(args, "s", &sql) || check_open(self) < 0)
        return NULL;
    int rc = exec_nogil(self->db, sql);
    if (rc != SQLITE_OK)
        return raise_sqlite(self->db, rc);
    Py_RETURN_NONE;
}

static PyObject *connection_close(Connection *self, PyObject *Py_UNUSED(ignored)) {
    if (self->db != NULL) {
        sqlite3_close_v2(self->db);
        self->db = NULL;
    }
    Py_RETURN_NONE;
}

/* One Python value as a Value pointing into the object (kept alive by the caller's rows). */
static int take_value(PyObject *obj, Value *out) {
    if (obj == Py_None) {
        out->kind = V_NULL;
    } else if (PyLong_Check(obj)) {
        int overflow = 0;
        out->number = PyLong_AsLongLongAndOverflow(obj, &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_OverflowError, "an integer does not fit in 64 bits");
            return -1;
        }
        if (out->number == -1 && PyErr_Occurred())
            return -1;
        out->kind = V_INT;
    } else if (PyUnicode_Check(obj)) {
        out->data = PyUnicode_AsUTF8AndSize(obj, &out->size);
        if (out->data == NULL)
            return -1;
        out->kind = V_TEXT;
    } else if (PyBytes_Check(obj)) {
        out->data = PyBytes_AS_STRING(obj);
        out->size = PyBytes_GET_SIZE(obj);
        out->kind = V_BLOB;
    } else {
        PyErr_Format(PyExc_TypeError, "cannot store a value of type %.100s", Py_TYPE(obj)->tp_name);
        return -1;
    }
    return 0;
}

static int bind_value(sqlite3_stmt *stmt, int index, const Value *value) {
    switch (value->kind) {
    case V_INT:
        return sqlite3_bind_int64(stmt, index, value->number);
    case V_TEXT:
        return sqlite3_bind_text64(stmt, index, value->data, (sqlite3_uint64)value->size, SQLITE_STATIC, SQLITE_UTF8);
    case V_BLOB:
        return sqlite3_bind_blob64(stmt, index, value->data, (sqlite3_uint64)value->size, SQLITE_STATIC);
    default:
        return sqlite3_bind_null(stmt, index);
    }
}

static int step_once(sqlite3_stmt *stmt) {
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

static PyObject *connection_insert(Connection *self, PyObject *args) {
    PyObject *rows;
    const char *insert_sql, *fts_sql;
    int seq_col, text_col;
    if (!PyArg_ParseTuple(args, "O!ssii", &PyList_Type, &rows, &insert_sql, &fts_sql, &seq_col, &text_col)
        || check_open(self) < 0)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(rows);
    if (count == 0)
        Py_RETURN_NONE;
    sqlite3_stmt *insert = NULL, *fts = NULL;
    int rc = sqlite3_prepare_v2(self->db, insert_sql, -1, &insert, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(self->db, fts_sql, -1, &fts, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(insert);
        return raise_sqlite(self->db, rc);
    }
    int columns = sqlite3_bind_parameter_count(insert);
    if (seq_col < 0 || text_col < 0 || seq_col >= columns || text_col >= columns
        || sqlite3_bind_parameter_count(fts) != 2) {
        sqlite3_finalize(insert);
        sqlite3_finalize(fts);
        PyErr_SetString(PyExc_ValueError, "the statements do not match the columns");
        return NULL;
    }
    Value *values = PyMem_Malloc(sizeof(Value) * (size_t)count * (size_t)columns);
    if (values == NULL) {
        sqlite3_finalize(insert);
        sqlite3_finalize(fts);
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    for (Py_ssize_t r = 0; r < count; r++) {
        PyObject *row = PyList_GET_ITEM(rows, r);
        if (!PyList_Check(row) || PyList_GET_SIZE(row) != columns) {
            PyErr_Format(PyExc_TypeError, "row %zd: expected a list of %d values", r, columns);
            goto done;
        }
        for (int c = 0; c < columns; c++)
            if (take_value(PyList_GET_ITEM(row, c), &values[r * columns + c]) < 0)
                goto done;
        if (values[r * columns + seq_col].kind != V_INT) {
            PyErr_Format(PyExc_TypeError, "row %zd: the seq must be an integer", r);
            goto done;
        }
    }
    rc = SQLITE_OK;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < count && rc == SQLITE_OK; r++) {
        const Value *row = &values[r * columns];
        for (int c = 0; c < columns && rc == SQLITE_OK; c++)
            rc = bind_value(insert, c + 1, &row[c]);
        if (rc == SQLITE_OK)
            rc = step_once(insert);
        if (rc == SQLITE_OK)
            rc = sqlite3_bind_int64(fts, 1, row[seq_col].number);
        if (rc == SQLITE_OK)
            rc = bind_value(fts, 2, &row[text_col]);
        if (rc == SQLITE_OK)
            rc = step_once(fts);
    }
    Py_END_ALLOW_THREADS
    if (rc != SQLITE_OK) {
        raise_sqlite(self->db, rc);
        goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    PyMem_Free(values);
    sqlite3_finalize(insert);
    sqlite3_finalize(fts);
    return result;
}

static PyObject *library(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored)) {
    Dl_info info;
    const char *path = "";
    if (dladdr((void *)&sqlite3_libversion, &info) && info.dli_fname != NULL)
        path = info.dli_fname;
    return Py_BuildValue("(ss)", sqlite3_libversion(), path);
}

static PyMethodDef connection_methods[] = {
    {"execute", (PyCFunction)connection_execute, METH_VARARGS, "Run statements without results, GIL released."},
    {"insert", (PyCFunction)connection_insert, METH_VARARGS, "Insert rows and their full-text rows, GIL released."},
    {"close", (PyCFunction)connection_close, METH_NOARGS, "Close the connection."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ConnectionType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "collector.store._sqlite_native.Connection",
    .tp_basicsize = sizeof(Connection),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A write connection to one partition file.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)connection_init,
    .tp_dealloc = (destructor)connection_dealloc,
    .tp_methods = connection_methods,
};

static PyMethodDef module_methods[] = {
    {"library", library, METH_NOARGS, "(version, path) of the SQLite library this module uses."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_sqlite_native", "Batch inserts into SQLite with the GIL released.", -1, module_methods,
};

PyMODINIT_FUNC PyInit__sqlite_native(void) {
    if (PyType_Ready(&ConnectionType) < 0)
        return NULL;
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL)
        return NULL;
    NativeError = PyErr_NewException("collector.store._sqlite_native.Error", NULL, NULL);
    if (NativeError == NULL || PyModule_AddObjectRef(mod, "Error", NativeError) < 0
        || PyModule_AddObjectRef(mod, "Connection", (PyObject *)&ConnectionType) < 0) {
        Py_DECREF(mod);
        return NULL;
    }
    return mod;
}
