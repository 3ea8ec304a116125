"""Where stages run beyond one process: a PostgreSQL service, Slurm job scripts, workers sharing a study."""
