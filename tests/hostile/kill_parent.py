"""SIGKILLs the scoring process (the test's pid) and its own parent.

expect: forbidden
"""
import os
import signal

os.kill(__PARENT_PID__, signal.SIGKILL)
os.kill(os.getppid(), signal.SIGKILL)
