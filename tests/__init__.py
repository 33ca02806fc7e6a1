"""The test suite; its folders mirror gvc/ (models, codec, training, data, eval) plus benchmarks/.

A package so that its modules import the shared helpers (``tests._training_helpers``, ``tests._entropy_fit``)
and each other by full name, and so that two folders may hold test files of the same name."""
