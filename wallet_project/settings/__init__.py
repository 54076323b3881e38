"""Settings: `base` for every environment (configured by environment variables), `test` for the suite."""
