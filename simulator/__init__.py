"""A local exchange simulator: real WebSocket and HTTP servers on 127.0.0.1 that speak
each exchange's protocol, for tests, benchmarks and trying coinstream by hand."""
