"""The benchmark engine: data, training, export, runtimes, timing, environment, reports."""
