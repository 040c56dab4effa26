"""Data sets: loaders and tf.data pipelines."""
