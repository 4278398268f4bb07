"""The sans-I/O engine: jobs, the one attempt loop, retry policy, throttle and stats."""
