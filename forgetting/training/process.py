"""One torchrun process of a data-parallel training stage (started by ``distributed.run_processes``)."""
from forgetting.training.distributed import job
from forgetting.training.stage import train_process

if __name__ == "__main__":
    train_process(job())
