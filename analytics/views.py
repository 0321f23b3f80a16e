"""Server-rendered pages of analytics (thin: forms validate, services write, selectors read)."""
