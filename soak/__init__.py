"""Soak test of the camera service: `python -m soak --minutes 10 --clients 1000` (soak/run.py)."""
