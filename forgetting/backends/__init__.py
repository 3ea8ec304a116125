"""Where stages run beyond one process: the ``mlflow run`` command line of a stage (Slurm tasks, the
verl job) and Optuna workers sharing one study."""
