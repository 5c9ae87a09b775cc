# cython: language_level=3
"""placeholder, replaced by the JSON-RPC core"""
