"""One torchrun process of a data-parallel stage (started by ``distributed.run_processes``)."""
from forgetting.training.distributed import run_job

if __name__ == "__main__":
    run_job()
