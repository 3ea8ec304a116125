"""Where stages run beyond one process: Slurm job scripts, workers sharing a study."""
