"""The HTTP side of the service's port: every path but the WebSocket one (PROTOCOL section 7).

`HttpApp` routes requests to handlers; `HttpConnection` speaks HTTP/1.1 through h11 and sends
response bodies over time (files with Range and zero-copy sendfile, endless streams).
"""
