"""In-context learning benchmarks: RegBench (regular languages), the induction-head task and MQAR, with the
training loops and reports behind `mosaic icl`. See docs/icl.md."""
