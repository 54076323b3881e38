"""The benchmark (docs/benchmarks.md): ``python bench/run.py`` is the command; the modules are its parts."""
