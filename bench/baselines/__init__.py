"""Reference servers for the load benchmarks: same answers, same auth handshake, naive code."""
