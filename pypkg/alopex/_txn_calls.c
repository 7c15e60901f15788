/* alopex._txn_calls: the per-key transaction calls of `alopex` (begin, get,
 * put, delete, commit, rollback) and the scan iterator written against the
 * CPython API.
 *
 * Why: a cffi call plus the Python method around it costs 0.5-1 µs, several
 * times the C library's own get or put; the peers users compare per-key calls
 * with (PyPI alopex over PyO3, py-lmdb) are CPython extensions. Everything
 * else in `alopex` stays on cffi.
 *
 * This module links nothing: `setup()` hands it the addresses of the C ABI
 * functions that `alopex._ffi` loaded (the extension `pomaidb._pomai_cffi`,
 * or the POMAI_C_LIB override), so both faces always call the same library.
 *
 * `TxnBase` is the base class of `alopex.Transaction`. It owns the
 * pomai_txn_t* (NULL once the transaction has ended) and rolls an abandoned
 * transaction back when it is freed. `_h` is that handle as a cffi cdata (made
 * on first use, for the methods written in Python), or None once ended;
 * assigning None ends the object's use of the handle without a C call.
 *
 * ScanIter is the iterator of Transaction.scan_prefix / scan_range: it
 * fetches (key, value) tuples from pomai_txn_scan in batches (one C call per
 * batch, resuming after the last key) and hands them out one by one; each
 * step first checks that its transaction is still active.
 *
 * The GIL: get, put and delete keep it (they read the memtable, the
 * transaction's own writes and, on disk, mapped segment pages: 0.1-1 µs, less
 * than releasing and taking back the GIL, unless a cold page has to be read
 * from the disk); begin, commit and rollback release it (a commit writes the
 * log and may fsync). Calls on one transaction from
 * several threads are serialised by the library, as before.
 *
 * Errors: a non-NULL status becomes the exception that Python's
 * `status_error(txn, address, ended)` returns (AlopexError with the status
 * code's name); a closed transaction the one `closed_error()` returns; a key
 * or value that is not bytes a TypeError naming the argument and the type.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* For the types only (pomai_kv_scan_batch_t); nothing is linked. */
#include "pomai/kv.h"

typedef pomai_status_t* (*begin_fn)(pomai_db_t*, uint32_t, pomai_txn_t**);
typedef pomai_status_t* (*get_fn)(pomai_txn_t*, const uint8_t*, size_t, uint8_t*, size_t, size_t*, bool*);
typedef pomai_status_t* (*put_fn)(pomai_txn_t*, const uint8_t*, size_t, const uint8_t*, size_t);
typedef pomai_status_t* (*delete_fn)(pomai_txn_t*, const uint8_t*, size_t);
typedef pomai_status_t* (*end_fn)(pomai_txn_t*);
typedef void (*status_free_fn)(pomai_status_t*);
typedef pomai_status_t* (*scan_fn)(pomai_txn_t*, const uint8_t*, size_t, const uint8_t*, size_t, size_t, size_t,
                                   pomai_kv_scan_batch_t**);
typedef void (*batch_free_fn)(pomai_kv_scan_batch_t*);

static struct {
  begin_fn begin;
  get_fn get;
  put_fn put;
  delete_fn del;
  end_fn commit;
  end_fn rollback;
  status_free_fn status_free;
  scan_fn scan;
  batch_free_fn batch_free;
  PyObject* status_error; /* status_error(txn, address: int, ended: bool) -> exception */
  PyObject* closed_error; /* closed_error() -> exception */
  PyObject* as_cdata;     /* as_cdata(address: int) -> pomai_txn_t* cdata */
} api;

/* Values up to this size are read through a buffer on the stack; larger ones
 * are read straight into the bytes object returned, after a first call that
 * tells their size. */
#define STACK_VALUE_BYTES 1024

typedef struct {
  PyObject_HEAD
  pomai_txn_t* txn; /* NULL once ended */
  PyObject* cdata;  /* the handle as cffi cdata, made on first use; NULL until then */
} TxnBase;

static PyObject* raise_made_by(PyObject* factory, PyObject* args) {
  if (factory == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "alopex._txn_calls.setup() was not called");
    return NULL;
  }
  PyObject* exc = PyObject_CallObject(factory, args);
  if (exc == NULL) return NULL;
  PyErr_SetObject((PyObject*)Py_TYPE(exc), exc);
  Py_DECREF(exc);
  return NULL;
}

static PyObject* raise_closed(void) { return raise_made_by(api.closed_error, NULL); }

/* Raises the exception for `st` (which status_error frees). `ended`: the call
 * ended the transaction. Returns NULL. */
static PyObject* raise_status(TxnBase* self, pomai_status_t* st, bool ended) {
  PyObject* args = Py_BuildValue("(OKO)", (PyObject*)self, (unsigned long long)(uintptr_t)st,
                                 ended ? Py_True : Py_False);
  if (args == NULL) {
    api.status_free(st);
    return NULL;
  }
  PyObject* r = raise_made_by(api.status_error, args);
  Py_DECREF(args);
  return r;
}

static PyObject* raise_not_bytes(PyObject* value, const char* name) {
  PyObject* tname = PyObject_GetAttrString((PyObject*)Py_TYPE(value), "__name__");
  if (tname == NULL) return NULL;
  PyErr_Format(PyExc_TypeError, "%s must be bytes, got %U", name, tname);
  Py_DECREF(tname);
  return NULL;
}

static void forget_handle(TxnBase* self) {
  self->txn = NULL;
  Py_CLEAR(self->cdata);
}

/* ---- TxnBase ------------------------------------------------------------ */

static PyObject* TxnBase_get(TxnBase* self, PyObject* key) {
  if (!PyBytes_Check(key)) return raise_not_bytes(key, "key");
  if (self->txn == NULL) return raise_closed();
  const uint8_t* k = (const uint8_t*)PyBytes_AS_STRING(key);
  const size_t klen = (size_t)PyBytes_GET_SIZE(key);
  uint8_t buf[STACK_VALUE_BYTES];
  size_t n = 0;
  bool found = false;
  pomai_status_t* st = api.get(self->txn, k, klen, buf, sizeof buf, &n, &found);
  if (st != NULL) return raise_status(self, st, false);
  if (n == 0) {
    if (found) return PyBytes_FromStringAndSize(NULL, 0);
    Py_RETURN_NONE;
  }
  if (n <= sizeof buf) return PyBytes_FromStringAndSize((const char*)buf, (Py_ssize_t)n);
  if (n > (size_t)PY_SSIZE_T_MAX) return PyErr_NoMemory();
  /* Larger than the stack buffer: read again into the result (the snapshot
   * makes the answer stable; the size is checked all the same). */
  PyObject* value = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n);
  if (value == NULL) return NULL;
  size_t n2 = 0;
  st = api.get(self->txn, k, klen, (uint8_t*)PyBytes_AS_STRING(value), n, &n2, &found);
  if (st != NULL) {
    Py_DECREF(value);
    return raise_status(self, st, false);
  }
  if (n2 != n) {
    Py_DECREF(value);
    PyErr_Format(PyExc_RuntimeError, "alopex: the value of a key changed size within a snapshot (%zu, then %zu bytes)",
                 n, n2);
    return NULL;
  }
  return value;
}

static PyObject* TxnBase_put(TxnBase* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 2) {
    PyErr_Format(PyExc_TypeError, "put() takes 2 arguments (key, value), got %zd", nargs);
    return NULL;
  }
  PyObject* key = args[0];
  PyObject* value = args[1];
  if (!PyBytes_Check(key)) return raise_not_bytes(key, "key");
  if (!PyBytes_Check(value)) return raise_not_bytes(value, "value");
  if (self->txn == NULL) return raise_closed();
  pomai_status_t* st = api.put(self->txn, (const uint8_t*)PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key),
                               (const uint8_t*)PyBytes_AS_STRING(value), (size_t)PyBytes_GET_SIZE(value));
  if (st != NULL) return raise_status(self, st, false);
  Py_RETURN_NONE;
}

static PyObject* TxnBase_delete(TxnBase* self, PyObject* key) {
  if (!PyBytes_Check(key)) return raise_not_bytes(key, "key");
  if (self->txn == NULL) return raise_closed();
  pomai_status_t* st = api.del(self->txn, (const uint8_t*)PyBytes_AS_STRING(key), (size_t)PyBytes_GET_SIZE(key));
  if (st != NULL) return raise_status(self, st, false);
  Py_RETURN_NONE;
}

/* Commit and rollback end the transaction whatever their outcome: the object
 * forgets the handle before the call (so no other thread can use it while
 * the GIL is released). */
static PyObject* end_txn(TxnBase* self, end_fn fn) {
  pomai_txn_t* txn = self->txn;
  if (txn == NULL) return raise_closed();
  forget_handle(self);
  pomai_status_t* st;
  Py_BEGIN_ALLOW_THREADS
  st = fn(txn);
  Py_END_ALLOW_THREADS
  if (st != NULL) return raise_status(self, st, true);
  Py_RETURN_NONE;
}

static PyObject* TxnBase_commit(TxnBase* self, PyObject* Py_UNUSED(ignored)) { return end_txn(self, api.commit); }

static PyObject* TxnBase_rollback(TxnBase* self, PyObject* Py_UNUSED(ignored)) {
  return end_txn(self, api.rollback);
}

static PyObject* TxnBase_get_h(TxnBase* self, void* Py_UNUSED(closure)) {
  if (self->txn == NULL) Py_RETURN_NONE;
  if (self->cdata == NULL) {
    self->cdata = PyObject_CallFunction(api.as_cdata, "K", (unsigned long long)(uintptr_t)self->txn);
    if (self->cdata == NULL) return NULL;
  }
  Py_INCREF(self->cdata);
  return self->cdata;
}

static int TxnBase_set_h(TxnBase* self, PyObject* value, void* Py_UNUSED(closure)) {
  if (value != Py_None) {
    PyErr_SetString(PyExc_AttributeError, "_h can only be set to None (the transaction has ended)");
    return -1;
  }
  forget_handle(self);
  return 0;
}

static void TxnBase_dealloc(TxnBase* self) {
  pomai_txn_t* txn = self->txn;
  forget_handle(self);
  if (txn != NULL && api.rollback != NULL) {
    /* An abandoned transaction: roll it back; a failure here (the database
     * already closed) has nobody to report to. */
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    pomai_status_t* st = api.rollback(txn);
    if (st != NULL) api.status_free(st);
    PyErr_Restore(type, value, tb);
  }
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static PyObject* TxnBase_new(PyTypeObject* type, PyObject* Py_UNUSED(args), PyObject* Py_UNUSED(kwds)) {
  (void)type;
  PyErr_SetString(PyExc_TypeError, "cannot create 'Transaction' instances directly; use Database.begin()");
  return NULL;
}

static PyObject* TxnBase_scan(TxnBase* self, PyObject* const* args, Py_ssize_t nargs);

static PyMethodDef TxnBase_methods[] = {
    {"get", (PyCFunction)TxnBase_get, METH_O,
     "get($self, key, /)\n--\n\n"
     "The value (bytes) of `key` as of the transaction's snapshot plus its own writes; None when absent."},
    {"put", (PyCFunction)(void (*)(void))TxnBase_put, METH_FASTCALL,
     "put($self, key, value, /)\n--\n\n"
     "Writes key = value (both bytes), applied at commit."},
    {"delete", (PyCFunction)TxnBase_delete, METH_O,
     "delete($self, key, /)\n--\n\n"
     "Deletes `key` (bytes) at commit."},
    {"commit", (PyCFunction)TxnBase_commit, METH_NOARGS,
     "commit($self, /)\n--\n\n"
     "Applies the transaction's writes atomically and ends it."},
    {"rollback", (PyCFunction)TxnBase_rollback, METH_NOARGS,
     "rollback($self, /)\n--\n\n"
     "Discards the transaction's writes and ends it."},
    {"_scan", (PyCFunction)(void (*)(void))TxnBase_scan, METH_FASTCALL,
     "_scan($self, db, lo, hi, max_entries, max_bytes, /)\n--\n\n"
     "An iterator of (key, value) over [lo, hi) (hi None: no bound), fetched in batches."},
    {NULL, NULL, 0, NULL},
};

static PyObject* TxnBase_get_ended(TxnBase* self, void* Py_UNUSED(closure)) {
  return PyBool_FromLong(self->txn == NULL);
}

static PyGetSetDef TxnBase_getset[] = {
    {"_ended", (getter)TxnBase_get_ended, NULL, "whether this object has let go of its handle", NULL},
    {"_h", (getter)TxnBase_get_h, (setter)TxnBase_set_h, "the pomai_txn_t* as cffi cdata, None once ended", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject TxnBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "alopex._txn_calls.TxnBase",
    .tp_basicsize = sizeof(TxnBase),
    .tp_dealloc = (destructor)TxnBase_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The C part of alopex.Transaction: the handle and the per-key calls.",
    .tp_methods = TxnBase_methods,
    .tp_getset = TxnBase_getset,
    .tp_new = TxnBase_new,
};

/* ---- ScanIter ------------------------------------------------------------ */

typedef struct {
  PyObject_HEAD
  TxnBase* txn;      /* the transaction (a strong reference) */
  PyObject* db;      /* its Database: the iterator stops working once that is closed */
  PyObject* lo;      /* bytes: where the next batch starts */
  PyObject* hi;      /* bytes, or NULL: no upper bound */
  PyObject* batch;   /* list of (key, value) of the current batch, or NULL */
  Py_ssize_t pos;    /* the next item of batch */
  size_t max_entries, max_bytes;
  bool last;         /* batch is the range's last */
  bool fetching;     /* a thread is in scan_fetch (the GIL released) */
} ScanIter;

static PyTypeObject ScanIterType;

/* Whether the iterator's transaction is still usable from Python: not ended,
 * and its database not closed (Database._handle is None once closed). */
static int scan_txn_active(ScanIter* self) {
  if (self->txn->txn == NULL) return 0;
  PyObject* h = PyObject_GetAttrString(self->db, "_handle");
  if (h == NULL) return -1;
  const int active = h != Py_None;
  Py_DECREF(h);
  return active;
}

/* Fetches the next batch into self->batch. Returns 0, or -1 with an
 * exception. Another thread calling next() meanwhile gets a ValueError, as
 * for a generator that is already executing. */
static int scan_fetch(ScanIter* self) {
  const uint8_t* lo = (const uint8_t*)PyBytes_AS_STRING(self->lo);
  const size_t lo_len = (size_t)PyBytes_GET_SIZE(self->lo);
  const uint8_t* hi = self->hi ? (const uint8_t*)PyBytes_AS_STRING(self->hi) : NULL;
  const size_t hi_len = self->hi ? (size_t)PyBytes_GET_SIZE(self->hi) : 0;
  pomai_kv_scan_batch_t* b = NULL;
  pomai_status_t* st;
  pomai_txn_t* txn = self->txn->txn;
  /* A batch reads up to max_entries entries and, for the first batch of a
   * range, collects the range's memtable versions: the GIL is released (lo
   * and hi stay referenced by self, which nothing changes meanwhile). */
  self->fetching = true;
  Py_BEGIN_ALLOW_THREADS
  st = api.scan(txn, lo, lo_len, hi, hi_len, self->max_entries, self->max_bytes, &b);
  Py_END_ALLOW_THREADS
  self->fetching = false;
  if (st != NULL) {
    raise_status(self->txn, st, false);
    return -1;
  }
  PyObject* list = PyList_New((Py_ssize_t)b->count);
  PyObject* next_lo = NULL;
  if (list == NULL) goto fail;
  for (size_t i = 0; i < b->count; ++i) {
    const pomai_kv_entry_t* e = &b->entries[i];
    PyObject* item = Py_BuildValue("(y#y#)", (const char*)e->key, (Py_ssize_t)e->key_len,
                                   e->value_len ? (const char*)e->value : "", (Py_ssize_t)e->value_len);
    if (item == NULL) goto fail;
    PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  if (b->more) {
    next_lo = PyBytes_FromStringAndSize((const char*)b->next_lo, (Py_ssize_t)b->next_lo_len);
    if (next_lo == NULL) goto fail;
    Py_SETREF(self->lo, next_lo);
  }
  self->last = !b->more;
  api.batch_free(b);
  Py_XSETREF(self->batch, list);
  self->pos = 0;
  return 0;
fail:
  Py_XDECREF(list);
  api.batch_free(b);
  return -1;
}

static PyObject* ScanIter_next(ScanIter* self) {
  if (self->fetching) {
    PyErr_SetString(PyExc_ValueError, "scan iterator already executing (next() from another thread)");
    return NULL;
  }
  for (;;) {
    const int active = scan_txn_active(self);
    if (active < 0) return NULL;
    if (!active) return raise_closed();
    if (self->batch != NULL && self->pos < PyList_GET_SIZE(self->batch)) {
      PyObject* item = PyList_GET_ITEM(self->batch, self->pos);
      ++self->pos;
      Py_INCREF(item);
      return item;
    }
    if (self->last) return NULL; /* StopIteration */
    if (scan_fetch(self) < 0) return NULL;
  }
}

static void ScanIter_dealloc(ScanIter* self) {
  Py_XDECREF(self->txn);
  Py_XDECREF(self->db);
  Py_XDECREF(self->lo);
  Py_XDECREF(self->hi);
  Py_XDECREF(self->batch);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static PyObject* ScanIter_new(PyTypeObject* Py_UNUSED(type), PyObject* Py_UNUSED(args), PyObject* Py_UNUSED(kwds)) {
  PyErr_SetString(PyExc_TypeError, "cannot create scan iterators directly; use Transaction.scan_prefix or scan_range");
  return NULL;
}

static PyTypeObject ScanIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "alopex._txn_calls.ScanIter",
    .tp_basicsize = sizeof(ScanIter),
    .tp_dealloc = (destructor)ScanIter_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "An iterator of (key, value) over a key range of a transaction, fetched in batches.",
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ScanIter_next,
    .tp_new = ScanIter_new,
};

/* TxnBase._scan(db, lo, hi, max_entries, max_bytes) -> ScanIter over [lo, hi)
 * (hi None: no bound). The arguments are checked by the Python caller; the
 * first batch is fetched by the first next(). */
static PyObject* TxnBase_scan(TxnBase* self, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 5) {
    PyErr_Format(PyExc_TypeError, "_scan() takes 5 arguments (db, lo, hi, max_entries, max_bytes), got %zd", nargs);
    return NULL;
  }
  if (!PyBytes_Check(args[1])) return raise_not_bytes(args[1], "lo");
  if (args[2] != Py_None && !PyBytes_Check(args[2])) return raise_not_bytes(args[2], "hi");
  const size_t max_entries = PyLong_AsSize_t(args[3]);
  if (max_entries == (size_t)-1 && PyErr_Occurred()) return NULL;
  const size_t max_bytes = PyLong_AsSize_t(args[4]);
  if (max_bytes == (size_t)-1 && PyErr_Occurred()) return NULL;
  if (self->txn == NULL) return raise_closed();
  if (api.scan == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "alopex._txn_calls.setup() was not called");
    return NULL;
  }
  ScanIter* it = PyObject_New(ScanIter, &ScanIterType);
  if (it == NULL) return NULL;
  Py_INCREF(self);
  it->txn = self;
  Py_INCREF(args[0]);
  it->db = args[0];
  Py_INCREF(args[1]);
  it->lo = args[1];
  it->hi = NULL;
  if (args[2] != Py_None) {
    Py_INCREF(args[2]);
    it->hi = args[2];
  }
  it->batch = NULL;
  it->pos = 0;
  it->max_entries = max_entries;
  it->max_bytes = max_bytes;
  it->last = false;
  it->fetching = false;
  return (PyObject*)it;
}

/* ---- module functions ---------------------------------------------------- */

/* begin(cls, db_address, mode) -> cls instance holding a new transaction. */
static PyObject* mod_begin(PyObject* Py_UNUSED(module), PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 3) {
    PyErr_SetString(PyExc_TypeError, "begin(cls, db_address, mode)");
    return NULL;
  }
  if (!PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject*)args[0], &TxnBaseType)) {
    PyErr_SetString(PyExc_TypeError, "begin: cls must be a subclass of TxnBase");
    return NULL;
  }
  PyTypeObject* cls = (PyTypeObject*)args[0];
  const unsigned long long db = PyLong_AsUnsignedLongLong(args[1]);
  if (db == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
  const unsigned long mode = PyLong_AsUnsignedLong(args[2]);
  if (mode == (unsigned long)-1 && PyErr_Occurred()) return NULL;
  if (api.begin == NULL) {
    PyErr_SetString(PyExc_RuntimeError, "alopex._txn_calls.setup() was not called");
    return NULL;
  }
  TxnBase* self = (TxnBase*)cls->tp_alloc(cls, 0);
  if (self == NULL) return NULL;
  pomai_txn_t* txn = NULL;
  pomai_status_t* st;
  Py_BEGIN_ALLOW_THREADS
  st = api.begin((pomai_db_t*)(uintptr_t)db, (uint32_t)mode, &txn);
  Py_END_ALLOW_THREADS
  if (st != NULL) {
    raise_status(self, st, true);
    Py_DECREF(self);
    return NULL;
  }
  self->txn = txn;
  return (PyObject*)self;
}

static int set_callable(PyObject** slot, PyObject* value, const char* name) {
  if (!PyCallable_Check(value)) {
    PyErr_Format(PyExc_TypeError, "setup: %s must be callable", name);
    return -1;
  }
  Py_INCREF(value);
  Py_XSETREF(*slot, value);
  return 0;
}

/* setup(functions: dict[str, int], status_error, closed_error, as_cdata):
 * the addresses of pomai_txn_begin, _get, _put, _delete, _commit, _rollback,
 * pomai_status_free, pomai_txn_scan and pomai_kv_scan_batch_free, and the
 * Python callables described at the top. */
static PyObject* mod_setup(PyObject* Py_UNUSED(module), PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 4 || !PyDict_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "setup(functions: dict, status_error, closed_error, as_cdata)");
    return NULL;
  }
  static const char* const names[] = {"pomai_txn_begin",   "pomai_txn_get",      "pomai_txn_put",
                                      "pomai_txn_delete",  "pomai_txn_commit",   "pomai_txn_rollback",
                                      "pomai_status_free", "pomai_txn_scan",     "pomai_kv_scan_batch_free"};
  void* addr[9];
  for (int i = 0; i < 9; ++i) {
    PyObject* v = PyDict_GetItemString(args[0], names[i]);
    if (v == NULL) {
      PyErr_Format(PyExc_KeyError, "setup: no address for %s", names[i]);
      return NULL;
    }
    const unsigned long long a = PyLong_AsUnsignedLongLong(v);
    if (a == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    if (a == 0) {
      PyErr_Format(PyExc_ValueError, "setup: the address of %s is 0", names[i]);
      return NULL;
    }
    addr[i] = (void*)(uintptr_t)a;
  }
  if (set_callable(&api.status_error, args[1], "status_error") < 0) return NULL;
  if (set_callable(&api.closed_error, args[2], "closed_error") < 0) return NULL;
  if (set_callable(&api.as_cdata, args[3], "as_cdata") < 0) return NULL;
  api.begin = (begin_fn)addr[0];
  api.get = (get_fn)addr[1];
  api.put = (put_fn)addr[2];
  api.del = (delete_fn)addr[3];
  api.commit = (end_fn)addr[4];
  api.rollback = (end_fn)addr[5];
  api.status_free = (status_free_fn)addr[6];
  api.scan = (scan_fn)addr[7];
  api.batch_free = (batch_free_fn)addr[8];
  Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"setup", (PyCFunction)(void (*)(void))mod_setup, METH_FASTCALL,
     "setup($module, functions, status_error, closed_error, as_cdata, /)\n--\n\n"
     "Binds the C library's functions (name -> address) and the error factories."},
    {"begin", (PyCFunction)(void (*)(void))mod_begin, METH_FASTCALL,
     "begin($module, cls, db_address, mode, /)\n--\n\nA new transaction of class cls on the database at db_address."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "alopex._txn_calls",
    "The per-key transaction calls of alopex over the CPython API (see the source's header).", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__txn_calls(void) {
  if (PyType_Ready(&TxnBaseType) < 0) return NULL;
  if (PyType_Ready(&ScanIterType) < 0) return NULL;
  PyObject* m = PyModule_Create(&module_def);
  if (m == NULL) return NULL;
  Py_INCREF(&TxnBaseType);
  if (PyModule_AddObject(m, "TxnBase", (PyObject*)&TxnBaseType) < 0) {
    Py_DECREF(&TxnBaseType);
    Py_DECREF(m);
    return NULL;
  }
  Py_INCREF(&ScanIterType);
  if (PyModule_AddObject(m, "ScanIter", (PyObject*)&ScanIterType) < 0) {
    Py_DECREF(&ScanIterType);
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
