"""`graph_function`: `tf.function` without AutoGraph, for every graph the project traces.

The project writes its graph control flow itself (`tf.while_loop`, `tf.cond`), so
AutoGraph's conversion (parsing and rewriting the source of every Python function a
trace calls) buys nothing and costs about a quarter of tracing a translator's searches.
It also reads source files when a trace starts: a checkout edited while a long run
traces would hand it new source for old functions.
"""

from __future__ import annotations

import tensorflow as tf


def graph_function(func=None, **options):
    """`tf.function(func, **options)` with `autograph=False`; a decorator without `func`."""
    return tf.function(func, autograph=False, **options)


def dataset_function(func):
    """`func` for `tf.data` to trace (`map`, `filter`, `scan`) as written, without
    AutoGraph: tf.data converts by default, and a training pass' pipeline, built again
    every epoch, would pay for the conversion each time."""
    return tf.autograph.experimental.do_not_convert(func)
