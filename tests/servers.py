"""Session fixtures that start real servers for the tests and stop them by PID.

(Filled in by the test-infrastructure work: dockerd, PostgreSQL, the reference registry,
dockyard-registry as a user starts it, and busybox-static test images.)
"""
