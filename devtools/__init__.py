"""Development tools shared by the tests and the benchmark (never part of the image)."""
