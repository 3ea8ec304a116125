"""SIGKILLs the scoring process's whole process group.

expect: forbidden, failed
"""
import os
import signal

os.killpg(os.getpgid(__PARENT_PID__), signal.SIGKILL)
