"""The test suite (`make test`), organised by part; a package tree, so helpers import as ``tests.<part>.<module>``."""
