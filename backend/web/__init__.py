"""The HTTP edge: request parsing, the one error shape, response headers, the published API documents."""
