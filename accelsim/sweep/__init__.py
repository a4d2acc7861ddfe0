"""Design-space sweeps: a TOML spec (`spec`) expands into design points (`points`) that run in
a process pool or on Dask (`executor`, `worker`) and land in one SQLite results file per sweep
(`store`, `rows`), which `export`, `recost` and `accelsim.plots` read. See `accelsim sweep`.
"""
