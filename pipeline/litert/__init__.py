"""Running .tflite files with LiteRT: timing, accuracy, A/B benchmarks."""
