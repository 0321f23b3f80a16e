"""Server-rendered pages of gateway (thin: forms validate, services write, selectors read)."""
