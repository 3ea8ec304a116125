"""Prints its whole environment and its own /proc environ.

expect: forbidden
"""
import os

print(dict(os.environ))
print(os.environ.get("MLFLOW_TRACKING_URI"), os.environ.get("HF_TOKEN"))
with open("/proc/self/environ", "rb") as handle:
    print(handle.read())
