/* The one loop of models/iforest.py that Python cannot make fast: walk every tree of a
 * packed isolation forest for one row and sum the leaf values, in C.
 *
 * walk(nodes, roots, row) -> float
 *   nodes: bytes, an array of struct node (below; built by iforest.ForestScorer with the
 *          same layout as a numpy structured dtype, 16 bytes per node, little-endian)
 *   roots: bytes, int32 index of each tree's root node, in estimators_ order
 *   row:   a C-contiguous float64 buffer of the row (already cast through float32)
 *
 * Each split compares row[feature] > threshold in float64 (a NaN goes where nan_right
 * says), exactly as scikit-learn's Tree.apply; the leaf values are added in tree order in
 * one double, as sklearn's ``depths += ...`` does. The result is therefore bit-identical
 * to IsolationForest.score_samples (tests/test_iforest.py).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>

struct node {
    double value;     /* split threshold; for a leaf, its leaf value */
    int32_t left;     /* -1 for a leaf; the right child is left + 1 */
    int16_t feature;
    uint8_t nan_right;
    uint8_t pad;
};
_Static_assert(sizeof(struct node) == 16, "struct node must match iforest._NODE");

static PyObject *walk(PyObject *self, PyObject *args) {
    Py_buffer nodes, roots, row;
    if (!PyArg_ParseTuple(args, "y*y*y*", &nodes, &roots, &row)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t n_nodes = nodes.len / (Py_ssize_t)sizeof(struct node);
    Py_ssize_t n_trees = roots.len / (Py_ssize_t)sizeof(int32_t);
    Py_ssize_t n_features = row.len / (Py_ssize_t)sizeof(double);
    if (nodes.len % (Py_ssize_t)sizeof(struct node) || roots.len % (Py_ssize_t)sizeof(int32_t)
        || row.len % (Py_ssize_t)sizeof(double)) {
        PyErr_SetString(PyExc_ValueError, "walk: buffer sizes are not whole records");
        goto done;
    }
    const struct node *table = (const struct node *)nodes.buf;
    const int32_t *root = (const int32_t *)roots.buf;
    const double *x = (const double *)row.buf;
    double depth = 0.0;
    for (Py_ssize_t tree = 0; tree < n_trees; tree++) {
        int32_t at = root[tree];
        for (;;) {
            if (at < 0 || at >= n_nodes) {
                PyErr_SetString(PyExc_ValueError, "walk: node index out of range");
                goto done;
            }
            const struct node *n = &table[at];
            if (n->left < 0) {
                depth += n->value;
                break;
            }
            if (n->feature < 0 || n->feature >= n_features) {
                PyErr_SetString(PyExc_ValueError, "walk: feature index out of range");
                goto done;
            }
            double value = x[n->feature];
            at = n->left + (isnan(value) ? n->nan_right : value > n->value);
        }
    }
    result = PyFloat_FromDouble(depth);
done:
    PyBuffer_Release(&nodes);
    PyBuffer_Release(&roots);
    PyBuffer_Release(&row);
    return result;
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS,
     "walk(nodes, roots, row) -> float: the summed leaf values of row's path in every tree."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "models._treewalk",
    "Isolation-forest tree walk for one row (see models/iforest.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__treewalk(void) { return PyModule_Create(&module); }
