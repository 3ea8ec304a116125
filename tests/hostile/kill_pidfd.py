"""Signals the scoring process through a pidfd, which raises no audit event.

expect: failed, forbidden
"""
import os
import signal

descriptor = os.pidfd_open(__PARENT_PID__)
signal.pidfd_send_signal(descriptor, signal.SIGKILL)
