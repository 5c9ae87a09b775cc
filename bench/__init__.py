"""Benchmarks of the camera service: micro (pytest-benchmark), load generator, scenario suite.

Nothing here is imported by the product; everything talks to servers on the loopback interface.
"""
