"""smtpcore: a protocol-level SMTP client with a sans-IO core."""
