"""Installs a signal handler to be handed the harness's frame.

expect: failed
"""
import signal

signal.signal(signal.SIGALRM, lambda signum, frame: print(frame.f_back.f_locals))
signal.setitimer(signal.ITIMER_REAL, 0.01)


def solution():
    return 41
