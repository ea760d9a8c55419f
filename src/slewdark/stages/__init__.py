"""One module per DVC stage: a thin ``run_*(params)`` over the library."""
