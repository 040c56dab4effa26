"""TFLite export: variants, quantisation, sparsity-aware fine-tunes, file checks, metadata."""
