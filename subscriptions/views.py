"""Server-rendered pages of subscriptions (thin: forms validate, services write, selectors read)."""
