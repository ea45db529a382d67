"""coinstream's common library: what every exchange worker shares, and nothing more."""
