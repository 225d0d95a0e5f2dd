"""The sans-IO SMTP core: no sockets, no TLS, no clocks."""
