"""Benchmark tasks: MNIST (more to come: CIFAR-10, keyword spotting, RBM)."""
