"""Training and fine-tuning: fit, distillation, tf.distribute."""
